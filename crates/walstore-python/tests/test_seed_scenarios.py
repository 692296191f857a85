"""The scenarios walstore exists for, as Python programs meet them: a context saved as several
documents and killed mid-save, read-modify-write from many processes, settings that change
together, a JSON document rewritten in a loop and killed."""

from __future__ import annotations

import random
import signal
import subprocess
import time

import pytest

import walstore
from conftest import child_script, run_child

SAVE_LOOP = """
    import sys, walstore
    store = walstore.open(sys.argv[1])
    save = store.get("ctx/meta", {"save": 0})["save"]
    print("ready", flush=True)
    while True:
        save += 1
        print("begin", save, flush=True)
        with store.transaction() as tx:
            tx["ctx/meta"] = {"save": save, "documents": 3}
            for name in ("messages", "tools", "memory"):
                tx["ctx/" + name] = {"save": save, "name": name, "body": ["x" * 100] * (save % 7 + 3)}
        print("done", save, flush=True)
"""

KILLS_MID_SAVE_MIN = 50
KILLS_MAX = 200


def kill_during_saves(store_path: str) -> tuple[bool, int]:
    """Starts a saver, kills it at a random moment; returns (landed mid-save, last ack)."""
    child = subprocess.Popen(
        child_script(SAVE_LOOP) + [store_path], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "ready\n"
    time.sleep(random.uniform(0.0, 0.03))
    child.send_signal(signal.SIGKILL)
    *lines, partial = child.communicate(timeout=30)[0].split("\n")
    # Only whole lines count: a kill may cut "done N" short, and then N was not acknowledged.
    acked = [int(line.split()[1]) for line in lines if line.startswith("done")]
    mid_save = bool(lines) and lines[-1].startswith("begin") and partial == ""
    return mid_save, max(acked, default=0)


def check_context(store_path: str, acked: int) -> None:
    """The four documents come from one save, and that save is at least the last acked."""
    with walstore.open(store_path, read_only=True) as store, store.snapshot() as snap:
        documents = list(snap.items(prefix="ctx/"))
    saves = {doc["save"] for _, doc in documents}
    assert len(documents) in (0, 4), documents
    assert len(saves) <= 1, f"a mix of two saves: {saves}"
    found = saves.pop() if saves else 0
    assert found >= acked, f"acknowledged save {acked} lost (found {found})"


def test_a_context_of_four_documents_killed_mid_save_is_never_mixed(store_path, capsys):
    kills = mid_saves = 0
    acked_before = 0
    while mid_saves < KILLS_MID_SAVE_MIN and kills < KILLS_MAX:
        mid_save, acked = kill_during_saves(store_path)
        kills += 1
        mid_saves += mid_save
        acked_before = max(acked_before, acked)
        check_context(store_path, acked_before)
    with capsys.disabled():
        print(f"\n{kills} kills, {mid_saves} landed mid-save, last acknowledged save {acked_before}")
    assert mid_saves >= KILLS_MID_SAVE_MIN, f"only {mid_saves} of {kills} kills landed mid-save"


INCREMENTS = """
    import sys, walstore
    with walstore.open(sys.argv[1]) as store:
        for _ in range(int(sys.argv[2])):
            with store.transaction() as tx:
                tx["counter"] = tx.get("counter", 0) + 1
                config = tx.get("config", {"name": "tool", "stats": {"runs": 0}})
                config["stats"]["runs"] += 1
                tx["config"] = config
"""


def test_eight_processes_of_read_modify_write_lose_no_update(store_path):
    walstore.open(store_path).close()
    workers = [
        subprocess.Popen(child_script(INCREMENTS) + [store_path, "100"]) for _ in range(8)
    ]
    for worker in workers:
        assert worker.wait(timeout=300) == 0
    with walstore.open(store_path) as store:
        assert store["counter"] == 800
        assert store["config"] == {"name": "tool", "stats": {"runs": 800}}


def test_three_settings_change_together_and_a_failure_on_the_third_keeps_all_old(store_path):
    old = {"server.url": "https://old", "server.namespace": "old", "server.tls-verify": True}
    with walstore.open(store_path) as store:
        store.update(old)
        too_large = "x" * (walstore.MAX_VALUE_BYTES + 1)
        with pytest.raises(walstore.ValueTooLargeError):
            with store.transaction() as tx:
                tx["server.url"] = "https://new"
                tx["server.namespace"] = "new"
                tx["server.tls-verify"] = too_large
        assert dict(store.items(prefix="server.")) == old
        with pytest.raises(ValueError):  # the same through update(): one transaction
            store.update({"server.url": "https://new", "server.tls-verify": too_large})
        assert dict(store.items(prefix="server.")) == old
        store.update({"server.url": "https://new", "server.namespace": "new"})
        assert store["server.url"] == "https://new" and store["server.tls-verify"] is True


REWRITE_LOOP = """
    import sys, walstore
    store = walstore.open(sys.argv[1])
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        store["settings.json"] = {"version": n, "servers": [{"id": i, "url": "https://h%d" % i} for i in range(50)]}
"""


def test_a_json_document_rewritten_in_a_loop_and_killed_is_never_unreadable(store_path):
    last = 0
    for _ in range(20):
        child = subprocess.Popen(
            child_script(REWRITE_LOOP) + [store_path], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        time.sleep(random.uniform(0.0, 0.05))
        child.kill()
        child.wait(timeout=30)
        with walstore.open(store_path) as store:
            doc = store.get("settings.json")
        if doc is not None:
            assert len(doc["servers"]) == 50 and doc["servers"][49]["url"] == "https://h49"
            assert doc["version"] >= 1
            last = doc["version"]
    assert last >= 1, "no rewrite ever committed"


def test_a_store_read_before_its_first_write_is_empty(store_path):
    run_child(
        """
        import sys, walstore
        with walstore.open(sys.argv[1]) as store:
            assert store.get("ctx/meta") is None and list(store.keys()) == []
        """,
        store_path,
    )
