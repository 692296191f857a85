"""Store.watch: the changes under a prefix committed by other threads and processes."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

import walstore

from conftest import run_child, unless_done_within

# Long enough for a slow CI machine; a change normally arrives within milliseconds.
WAIT = 60.0


def later(seconds: float, action) -> threading.Thread:
    """Runs `action` in a thread after `seconds`."""

    def run() -> None:
        time.sleep(seconds)
        action()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_watch_sees_a_write_made_by_another_thread(store_path):
    with walstore.open(store_path) as store, store.watch("cfg.") as watch:
        assert watch.prefix == "cfg."

        def write() -> None:
            store["cfg.a"] = {"n": 1}

        writer = later(0.2, write)
        # The GIL is released while waiting: the writer runs meanwhile.
        assert watch.next(timeout=WAIT) == ("cfg.a", {"n": 1})
        writer.join()


def test_iterating_blocks_until_the_next_change(store_path):
    with walstore.open(store_path) as store:
        watch = store.watch("cfg.")
        writer = later(0.2, lambda: store.update({"cfg.b": 2, "cfg.c": 3}))
        seen = []
        for change in watch:
            seen.append(change)
            if len(seen) == 2:
                break
        writer.join()
        assert seen == [("cfg.b", 2), ("cfg.c", 3)]
        watch.close()
        assert watch.closed
        with pytest.raises(walstore.ClosedError):
            watch.next(timeout=0)
        watch.close()  # closing twice is fine


def test_a_watch_sees_a_write_made_by_another_process(store_path):
    with walstore.open(store_path) as store:
        store["cfg.x"] = "before"
        watch = store.watch("cfg.")
        run_child(
            """
            import sys, walstore
            with walstore.open(sys.argv[1]) as store:
                store.update({"cfg.x": "after", "elsewhere": 1})
            """,
            store_path,
        )
        assert watch.next(timeout=WAIT) == ("cfg.x", "after")
        assert watch.next(timeout=0.3) is None  # "elsewhere" is outside the prefix


def test_a_timeout_without_changes_returns_none(store_path):
    with walstore.open(store_path) as store:
        store["cfg.a"] = 1  # before the watch: not reported
        watch = store.watch("cfg.")
        started = time.monotonic()
        assert watch.next(timeout=0.5) is None
        assert time.monotonic() - started >= 0.5
        assert watch.next(timeout=0) is None
        with pytest.raises(ValueError):
            watch.next(timeout=-1)


def test_a_deletion_gives_none_as_the_value(store_path):
    with walstore.open(store_path) as store:
        store["cfg.a"] = 1
        store["cfg.b"] = 2
        watch = store.watch("cfg.")
        del store["cfg.a"]
        assert watch.next(timeout=WAIT) == ("cfg.a", None)
        store.delete_prefix("cfg.")
        assert watch.next(timeout=WAIT) == ("cfg.b", None)


def test_keys_outside_the_prefix_are_not_reported(store_path):
    with walstore.open(store_path) as store:
        watch = store.watch("cfg.")
        store["cfg"] = 0
        store["cfgx"] = 0
        store["other"] = 0
        store["cfg.z"] = "in"
        assert watch.next(timeout=WAIT) == ("cfg.z", "in")
        assert watch.next(timeout=0.2) is None


def test_keys_and_values_are_decoded_as_the_mapping_api_does_untyped_ones_as_bytes(store_path, cli):
    with walstore.open(store_path) as store:
        typed = store.watch(b"k")
        raw = store.watch("k", raw=True)
        store.put_bytes(b"k\xff", b"\x00\x01")
        # Text written by the CLI is not a typed value: raw watches read it as bytes.
        subprocess.run([cli, "set", store_path, "k.text=hello"], check=True)
        got = dict(raw.next(timeout=WAIT) for _ in range(2))
        assert got == {b"k\xff": b"\x00\x01", "k.text": b"hello"}
        # A typed watch returns values that are not typed as bytes, as items() does.
        got = dict(typed.next(timeout=WAIT) for _ in range(2))
        assert got == {b"k\xff": b"\x00\x01", "k.text": b"hello"}
        store["k.typed"] = "text"
        assert typed.next(timeout=WAIT) == ("k.typed", "text")


def test_ctrl_c_interrupts_a_waiting_watch(store_path, sigint_raises):
    with walstore.open(store_path) as store:
        watch = store.watch("cfg.")
        started = time.monotonic()
        # Only if the interrupt never came: a change ends the wait.
        with unless_done_within(WAIT, lambda: store.__setitem__("cfg.fallback", 1)):
            killer = later(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
            with pytest.raises(KeyboardInterrupt):
                watch.next()
            killer.join()
        assert time.monotonic() - started < 10


def test_closing_the_store_ends_its_watches(store_path):
    store = walstore.open(store_path)
    watch = store.watch("cfg.")
    closer = later(0.3, store.close)
    with pytest.raises(walstore.ClosedError):
        watch.next(timeout=WAIT)
    closer.join()
    with pytest.raises(walstore.ClosedError):
        store.watch("cfg.")


def test_a_watch_used_in_a_forked_child_raises_forked(store_path):
    store = walstore.open(store_path)
    watch = store.watch("cfg.")
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code, never run the parent's cleanup
        code = 1
        try:
            watch.next(timeout=0)
        except walstore.ForkedError:
            code = 0
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0, "the child did not see ForkedError"
    store["cfg.a"] = 1
    assert watch.next(timeout=WAIT) == ("cfg.a", 1)  # the parent's watch is unaffected
    store.close()
