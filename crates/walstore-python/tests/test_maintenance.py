"""Maintenance from Python: checkpoint, backup, info, verify and salvage, as the CLI does
them."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

import walstore
from conftest import run_child


def test_checkpoint_cuts_the_log_and_info_shows_it(store_path, cli):
    with walstore.open(store_path) as store:
        store.update({f"k{i}": i for i in range(100)})
        before = store.info()
        assert before["wal_bytes"] > 0 and before["runs"] == 0
        stats = store.checkpoint()
        assert isinstance(stats, walstore.CheckpointStats)
        assert stats.keys_changed == 100 and stats.wal_bytes == before["wal_bytes"]
        after = store.info()
        assert after["wal_bytes"] == 0 and after["runs"] == 1
        assert after["checkpoint_txn"] == after["last_txn"] == stats.txn_id
        assert sum(f["entries"] for f in after["snapshot_files"]) == 100
    cli_info = json.loads(
        subprocess.run(
            [cli, "info", "--json", store_path], check=True, capture_output=True, text=True
        ).stdout
    )
    # The same fields as `walstore info --json` (the per-handle counters differ; "ok" and
    # "exit" are the CLI's own).
    assert set(cli_info) - {"ok", "exit"} <= set(after), set(cli_info) - set(after)
    for field in ("generation", "last_txn", "checkpoint_txn", "wal_bytes", "runs", "snapshot_bytes"):
        assert cli_info[field] == after[field], field


def test_backup_writes_a_store_that_opens(store_path, tmp_path):
    dest = tmp_path / "copy"
    with walstore.open(store_path) as store:
        store.update(a=1, b=[2])
        stats = store.backup(dest)
        assert stats.keys == 2 and stats.files >= 1
        with pytest.raises(walstore.NotAStoreError):
            store.backup(dest)  # not empty any more
    with walstore.open(dest, read_only=True) as copy:
        assert dict(copy.items()) == {"a": 1, "b": [2]}


def test_verify_reports_damage_with_file_and_offset_and_salvage_reads_the_rest(store_path):
    with walstore.open(store_path) as store:
        store["kept"] = "checkpointed"
        store.checkpoint()
        store["logged"] = "x" * 200
    report = walstore.verify(store_path)
    assert report["bytes_checked"] > 0
    assert {f["name"] for f in report["files"]} >= {"MANIFEST", "wal"} or report["files"]
    # Damage one byte inside the logged transaction's record (the log's first record).
    wal = os.path.join(store_path, "wal")
    data = bytearray(open(wal, "rb").read())
    at = data.find(b"x" * 200)
    assert at > 0
    data[at + 100] ^= 0xFF
    with open(wal, "r+b") as f:
        f.seek(at + 100)
        f.write(bytes([data[at + 100]]))
    with pytest.raises(walstore.CorruptionError) as caught:
        walstore.verify(store_path)
    assert caught.value.file == wal and caught.value.offset <= at + 100
    with pytest.raises(walstore.CorruptionError) as caught:
        walstore.open(store_path)
    assert "salvage=True" in str(caught.value)
    with walstore.open(store_path, salvage=True) as salvaged:
        assert salvaged.read_only and salvaged["kept"] == "checkpointed"
        assert "logged" not in salvaged


def test_the_first_cli_read_after_a_killed_writer_folds_the_log_it_left(store_path, cli):
    """A process killed with the store open leaves its log unfolded, and a reading command
    opens the store read-only, alone: it reads that whole log into memory of its own, as
    every later one would. `walstore get` answers, then opens the store for writing once
    (without waiting for the writer lock), whose recovery folds the log into a run: the next
    command finds no log to read, and nothing is lost."""
    run_child(
        """
        import os, sys, walstore
        store = walstore.open(sys.argv[1])
        store.update({f"k{i}": f"{i}:" + "x" * 10_000 for i in range(200)})
        os._exit(0)  # no close, as a killed process leaves the store
        """,
        str(store_path),
    )

    left = walstore.open(store_path, read_only=True)
    assert left.info()["wal_bytes"] > 2_000_000, "the child's log, not folded"
    assert left.holds_unfolded_log
    left.close()
    first = subprocess.run([cli, "get", store_path, "k7"], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert first.stdout.rstrip("\n") == "7:" + "x" * 10_000
    after = walstore.open(store_path, read_only=True)
    try:
        info = after.info()
        assert info["wal_bytes"] == 0 and info["checkpoint_txn"] == info["last_txn"], info
        assert info["memtable_keys"] == 0, info
        assert not after.holds_unfolded_log
        assert after["k199"] == "199:" + "x" * 10_000
    finally:
        after.close()
