"""Waits for the writer lock behave as CPython's own waits (PEP 475): a signal handler that
returns lets the wait go on, one that raises (Ctrl-C: KeyboardInterrupt) ends it; and a write
through the store by the thread that holds its open transaction raises at once."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

import walstore
from conftest import child_script, run_child

# Holds the writer lock of the store in argv[1] (an open transaction) from when it creates
# the file argv[2] until the file argv[3] exists; then commits "holder" and exits.
HOLDER = """
    import os, sys, time, walstore
    path, held, stop = sys.argv[1:4]
    with walstore.open(path) as store:
        with store.transaction() as tx:
            tx["holder"] = "done"
            open(held, "w").close()
            while not os.path.exists(stop):
                time.sleep(0.01)
"""


class Holder:
    """A process that holds the store's writer lock until `release()`."""

    def __init__(self, store_path: str, tmp: Path) -> None:
        self.held = tmp / "held"
        self.stop = tmp / "stop"
        for flag in (self.held, self.stop):
            if flag.exists():
                flag.unlink()
        self.process = subprocess.Popen(
            child_script(HOLDER) + [store_path, str(self.held), str(self.stop)]
        )
        while not self.held.exists():
            assert self.process.poll() is None, "the holder ended before taking the lock"
            time.sleep(0.01)

    def release(self) -> None:
        self.stop.touch()
        assert self.process.wait(timeout=60) == 0

    def __enter__(self) -> "Holder":
        return self

    def __exit__(self, *exc_info) -> None:
        if self.process.poll() is None:
            self.release()


@pytest.fixture
def sigusr1_counter():
    """A no-op SIGUSR1 handler that counts its calls; the previous handler is put back."""
    calls: list[int] = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: calls.append(signum))
    yield calls
    signal.signal(signal.SIGUSR1, previous)


def signal_until(signum: int, done, then=None) -> threading.Thread:
    """A thread that sends `signum` to this process every 20 ms until `done()`, then calls
    `then`."""

    def run() -> None:
        while not done():
            os.kill(os.getpid(), signum)
            time.sleep(0.02)
        if then is not None:
            then()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.parametrize("wait", [None, 60.0])
def test_a_handler_that_returns_lets_the_lock_wait_go_on(
    store_path, tmp_path, sigusr1_counter, wait
):
    walstore.open(store_path).close()
    with Holder(store_path, tmp_path) as holder:
        with walstore.open(store_path, wait=wait) as store:
            # Once the handler has run three times (so three signals came during the wait),
            # the holder lets go; the wait must then end with the lock, not an error.
            sender = signal_until(
                signal.SIGUSR1, lambda: len(sigusr1_counter) >= 3, holder.release
            )
            with store.transaction() as tx:
                assert tx["holder"] == "done"  # it waited for the holder's commit
                tx["after"] = 1
            sender.join()
            store["also"] = 2  # item assignment waits the same way
    assert len(sigusr1_counter) >= 3


def test_open_goes_on_through_signals_while_another_process_writes(
    store_path, tmp_path, sigusr1_counter
):
    walstore.open(store_path).close()
    with Holder(store_path, tmp_path):
        stop = threading.Event()
        sender = signal_until(signal.SIGUSR1, stop.is_set)
        try:
            for _ in range(3):
                with walstore.open(store_path) as store:
                    assert "holder" not in store  # the holder has not committed yet
        finally:
            stop.set()
            sender.join()


# Each operation waits for the writer lock.
OPERATIONS = {
    "transaction": lambda store: store.transaction(),
    "setitem": lambda store: store.__setitem__("k", 1),
    "update": lambda store: store.update(k=1),
    "pop": lambda store: store.pop("k", None),
    "delete_prefix": lambda store: store.delete_prefix("k"),
    "compact": lambda store: store.compact(),
    "checkpoint": lambda store: store.checkpoint(),
}


class CtrlC:
    """A real SIGINT, sent to this process by a thread, whose handler raises
    KeyboardInterrupt as Python's own does, but only while the main thread is inside the
    operation: the handler disarms itself as it raises, so a SIGINT that arrives after the
    operation ended (the thread sends until it sees the end) is ignored instead of ending
    the test run elsewhere. A SIGINT whose KeyboardInterrupt Python drops (one landing in a
    finalizer is only reported as "ignored") re-arms it after a second."""

    REARM_SECONDS = 1.0

    def __init__(self) -> None:
        self.armed = False
        self.sent: list[float] = []
        self.ended = threading.Event()
        self.previous = signal.signal(signal.SIGINT, self.handler)

    def handler(self, signum, frame) -> None:
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt

    def interrupt(self, operation) -> float:
        """Runs `operation` while SIGINTs are sent; returns the seconds from the first
        SIGINT to the KeyboardInterrupt. Anything else the operation does fails the test."""
        self.sent.clear()
        self.ended.clear()
        self.armed = True

        def send() -> None:
            while not self.ended.wait(0.05):
                if self.sent and time.monotonic() - self.sent[-1] > self.REARM_SECONDS:
                    self.armed = True
                self.sent.append(time.monotonic())
                os.kill(os.getpid(), signal.SIGINT)

        sender = threading.Thread(target=send)
        sender.start()
        try:
            operation()
        except KeyboardInterrupt:
            return time.monotonic() - self.sent[0]
        finally:
            self.armed = False
            self.ended.set()
            sender.join()
        pytest.fail("the operation ended without KeyboardInterrupt")

    def close(self) -> None:
        signal.signal(signal.SIGINT, self.previous)


@pytest.mark.parametrize("wait", [None, 60.0])
def test_ctrl_c_ends_every_lock_wait_with_keyboard_interrupt(store_path, tmp_path, wait):
    with walstore.open(store_path) as store:
        store["before"] = 1
    latencies = {}
    ctrl_c = CtrlC()
    try:
        with Holder(store_path, tmp_path) as holder:
            with walstore.open(store_path, wait=wait) as store:
                for name, operation in OPERATIONS.items():
                    # The holder keeps the lock all along: the operation can only end by the
                    # interrupt (or a BusyError after 60 s, which fails the test).
                    latencies[name] = ctrl_c.interrupt(lambda: operation(store))
                    assert holder.process.poll() is None
                assert store["before"] == 1
    finally:
        ctrl_c.close()
    print("from the first SIGINT to KeyboardInterrupt (seconds):", latencies)


def test_a_timeout_raises_busy_error_which_is_a_timeout_error(store_path, tmp_path):
    walstore.open(store_path).close()
    with Holder(store_path, tmp_path):
        with walstore.open(store_path, wait=0.3) as store:
            with pytest.raises(TimeoutError) as caught:
                store["k"] = 1
            assert isinstance(caught.value, walstore.BusyError)
            assert "gave up after waiting" in str(caught.value)
        with walstore.open(store_path, wait=0) as store:
            with pytest.raises(walstore.BusyError, match="not to wait"):
                store.transaction()


NESTING = """
    import sys, threading, walstore
    path = sys.argv[1]
    store = walstore.open(path)
    twin = walstore.open(path)  # another handle of the same store in this process
    writes = {
        "setitem": lambda s: s.__setitem__("k", 2),
        "delitem": lambda s: s.__delitem__("k"),
        "transaction": lambda s: s.transaction(),
        "update": lambda s: s.update(k=3),
        "put_bytes": lambda s: s.put_bytes("k", b"x"),
        "discard": lambda s: s.discard("k"),
        "pop": lambda s: s.pop("k"),
        "setdefault": lambda s: s.setdefault("n", 0),
        "clear": lambda s: s.clear(),
        "delete_prefix": lambda s: s.delete_prefix("k"),
        "compact": lambda s: s.compact(),
        "checkpoint": lambda s: s.checkpoint(),
    }
    with store.transaction() as tx:
        tx["k"] = 1
        for handle in (store, twin):
            for name, write in writes.items():
                try:
                    write(handle)
                except walstore.NestedTransactionError as error:
                    assert "open write transaction" in str(error), error
                else:
                    raise AssertionError(f"{name} did not raise")
        # Reads go on, and another thread is not this thread: it waits or is busy.
        assert store.get("k") is None and tx["k"] == 1
        outcome = []
        def other():
            try:
                walstore.open(path, wait=0)["x"] = 1
            except walstore.BusyError:
                outcome.append("busy")
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert outcome == ["busy"], outcome
    store["k"] = 4  # once the transaction has ended, writing through the store works
    tx2 = store.transaction()
    tx2.rollback()
    store["k"] = 5
    assert store["k"] == 5
    print("ok")
"""


def test_a_nested_write_in_one_thread_raises_at_once(store_path):
    # In a child under a 10 s timeout: a hang fails the test instead of stopping the suite.
    done = run_child(NESTING, store_path, timeout=10)
    assert done.stdout.strip() == "ok"
