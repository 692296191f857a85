"""Each exception of walstore raised by a real situation."""

from __future__ import annotations

import errno
import gc
import os
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

import walstore
from conftest import child_script

HOLD_LOCK = """
    import sys, walstore
    store = walstore.open(sys.argv[1])
    with store.transaction() as tx:
        tx["held"] = True
        print("locked", flush=True)
        sys.stdin.readline()  # hold the writer lock until the parent says so
"""


def test_busy_when_another_process_holds_the_lock_and_wait_is_zero(store_path):
    walstore.open(store_path).close()
    holder = subprocess.Popen(
        child_script(HOLD_LOCK) + [store_path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with walstore.open(store_path, wait=0) as store:
            with pytest.raises(walstore.BusyError):
                store["k"] = 1
            with pytest.raises(walstore.BusyError):
                store.transaction()
            assert "k" not in store  # readers never wait
        with walstore.open(store_path, wait=0.2) as store:
            with pytest.raises(walstore.BusyError):
                store["k"] = 1
    finally:
        holder.communicate("go\n", timeout=30)
    assert holder.returncode == 0
    with walstore.open(store_path, wait=0) as store:
        store["k"] = 1
        assert store["held"] is True


HOLD_LOCK_UNTIL_TOLD = """
    import select, sys, walstore
    store = walstore.open(sys.argv[1])
    with store.transaction() as tx:
        tx["held"] = True
        print("locked", flush=True)
        told, _, _ = select.select([sys.stdin], [], [], 20)
        print("released when told" if told else "released after 20 s", flush=True)
"""


def test_a_thread_waiting_for_the_lock_does_not_hold_the_gil(store_path):
    store = walstore.open(store_path)  # wait=None: waits as long as it takes
    holder = subprocess.Popen(
        child_script(HOLD_LOCK_UNTIL_TOLD) + [store_path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None and holder.stdout is not None
    assert holder.stdout.readline() == "locked\n"
    writer = threading.Thread(target=store.__setitem__, args=("k", 1))
    writer.start()
    time.sleep(0.3)  # the writer is now waiting for the lock
    # This thread needs the GIL to tell the holder to let go: held by the waiting writer, it
    # would only come back when the holder gives up after 20 s.
    holder.stdin.write("go\n")
    holder.stdin.flush()
    writer.join(timeout=60)
    assert holder.communicate(timeout=60)[0] == "released when told\n"
    assert store["k"] == 1
    store.close()


def test_a_flipped_byte_is_corruption_naming_file_and_offset(store_path):
    with walstore.open(store_path) as store:
        for i in range(3):
            store[f"k{i}"] = "v" * 100
    wal = Path(store_path) / "wal"
    data = bytearray(wal.read_bytes())
    data[4096 + 40] ^= 0x04  # inside the first transaction's records, after the header
    wal.write_bytes(bytes(data))
    with pytest.raises(walstore.CorruptionError) as caught:
        walstore.open(store_path)
    assert caught.value.file.endswith("wal")
    assert caught.value.offset >= 4096
    assert isinstance(caught.value, walstore.Error)


def test_a_newer_format_version_is_unsupported(store_path):
    walstore.open(store_path).close()
    manifest = Path(store_path) / "MANIFEST"
    data = bytearray(manifest.read_bytes())
    data[8:12] = struct.pack("<I", 99)  # the format version (docs/FORMAT.md)
    manifest.write_bytes(bytes(data))
    with pytest.raises(walstore.UnsupportedFormatError):
        walstore.open(store_path)


def test_a_directory_of_other_files_is_not_a_store(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(walstore.NotAStoreError):
        walstore.open(tmp_path)
    with pytest.raises(walstore.NotAStoreError):
        walstore.open(tmp_path / "missing", read_only=True)


def test_writes_to_a_read_only_store_raise_read_only(store_path):
    walstore.open(store_path).close()
    with walstore.open(store_path, read_only=True) as store:
        with pytest.raises(walstore.ReadOnlyError):
            store["k"] = 1


def test_a_store_used_in_a_forked_child_raises_forked(store_path):
    store = walstore.open(store_path)
    store["k"] = 1
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code, never run the parent's cleanup
        code = 1
        try:
            store["k"]
        except walstore.ForkedError:
            try:
                walstore.open(store_path)["k"] = 2  # opened again in the child: works
                code = 0
            except BaseException:
                code = 3
        except BaseException:
            code = 2
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0, "the child did not see ForkedError, then a working reopen"
    assert store["k"] == 2
    store["k"] = 3  # the parent's handle is unaffected
    store.close()


def test_a_forked_child_dropping_its_copies_keeps_the_parents_writer_lock(store_path):
    store = walstore.open(store_path)
    tx = store.transaction()  # the parent holds the writer lock across the fork
    tx["k"] = "parent"
    pid = os.fork()
    if pid == 0:  # the child drops every inherited object, then exits normally
        code = 0
        try:
            del tx
            try:
                store.close()
                code = 2  # closing the parent's store in the child must be refused
            except walstore.ForkedError:
                pass
            del store
            gc.collect()
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    # Another thread (this one holds `tx`: it would get NestedTransactionError) finds the
    # lock still held: the child did not release it.
    outcome = []

    def write_from_another_thread():
        with walstore.open(store_path, wait=0) as other:
            try:
                other["k"] = "other"
                outcome.append("written")
            except walstore.BusyError:
                outcome.append("busy")

    thread = threading.Thread(target=write_from_another_thread)
    thread.start()
    thread.join()
    assert outcome == ["busy"]
    tx.commit()
    assert store["k"] == "parent"
    store.close()


class Tmpfs:
    """A tmpfs of `size` mounted at `path`, or None where mounting is not allowed."""

    @staticmethod
    def mount(path: Path, size: str):
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            capture_output=True,
        )
        return path if done.returncode == 0 else None

    @staticmethod
    def resize(path: Path, size: str) -> None:
        done = subprocess.run(["mount", "-o", f"remount,size={size}", str(path)])
        assert done.returncode == 0, f"remount {path} to {size}"

    @staticmethod
    def unmount(path: Path) -> None:
        subprocess.run(["umount", str(path)], capture_output=True)


def test_a_full_disk_is_a_storage_error_with_enospc_then_poisoned(tmp_path):
    mount = Tmpfs.mount(tmp_path / "small", "6m")
    if mount is None:
        pytest.skip("mounting a tmpfs is not allowed here (needs root), so no real full disk")
    try:
        store_path = mount / "store"
        store = walstore.open(store_path)
        store["first"] = "acknowledged"
        filler = mount / "filler"
        with open(filler, "wb") as f:  # take every free byte, so the next write fails
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        with pytest.raises(walstore.StorageError) as caught:
            for i in range(10_000):
                store[f"k{i}"] = "x" * 60_000
        assert caught.value.errno == errno.ENOSPC
        assert isinstance(caught.value, OSError) and isinstance(caught.value, walstore.Error)
        with pytest.raises(walstore.PoisonedError):
            store["after"] = 1
        store.close()  # a poisoned handle has nothing it could still make durable
        filler.unlink()
        Tmpfs.resize(mount, "64m")  # room for the recovery checkpoint of the reopen
        with walstore.open(store_path) as again:
            assert again["first"] == "acknowledged"
    finally:
        Tmpfs.unmount(tmp_path / "small")


@pytest.mark.parametrize("name", ["wal", "SHM", "LOCK", "MERGE", "MANIFEST", "LOGINDEX"])
def test_a_symbolic_link_in_place_of_a_store_file_is_refused_and_never_written_through(
    tmp_path, name
):
    path = tmp_path / "store"
    with walstore.open(path) as store:
        store["k"] = "v"
    target = tmp_path / "precious"
    target.write_bytes(b"precious data")
    (path / name).unlink(missing_ok=True)
    (path / name).symlink_to(target)
    with pytest.raises(walstore.NotAStoreError, match=name + ".*symbolic link"):
        walstore.open(path)
    if name not in ("LOCK", "MERGE"):  # a read-only open never opens LOCK or MERGE
        with pytest.raises(walstore.NotAStoreError, match="symbolic link"):
            walstore.open(path, read_only=True)
    assert target.read_bytes() == b"precious data"
