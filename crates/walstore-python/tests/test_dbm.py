"""walstore.dbm: the standard library's own dbm test cases (test.test_dbm.AnyDBMTestCase)
against it, and what it adds: changes between two sync() calls are one atomic transaction."""

from __future__ import annotations

import dbm
import os
import shelve
import subprocess
import sys
import unittest

import pytest

import walstore
import walstore.dbm

try:
    from test import test_dbm
except ImportError:  # an interpreter built without its test package
    test_dbm = None


if test_dbm is not None:

    class TestWalstoreDbmAsTheStandardLibrary(test_dbm.AnyDBMTestCase, unittest.TestCase):
        """CPython's own dbm test cases, with walstore.dbm as dbm's default module.

        `dbm.open` finds the module of an existing database with `dbm.whichdb`, which knows
        only the standard formats: the module is registered for the test by letting whichdb
        also recognise a walstore store (walstore.dbm.whichdb), as it would a new format."""

        module = walstore.dbm

        def setUp(self) -> None:
            self._cwd = os.getcwd()
            self._tmp = self.enterContext_tmp()
            os.chdir(self._tmp)
            self.addCleanup(os.chdir, self._cwd)
            original = dbm.whichdb

            def whichdb(path):
                return walstore.dbm.whichdb(path) or original(path)

            self.addCleanup(setattr, dbm, "whichdb", original)
            dbm.whichdb = whichdb
            self.addCleanup(dbm._modules.pop, "walstore.dbm", None)
            dbm._modules["walstore.dbm"] = walstore.dbm
            super().setUp()

        def enterContext_tmp(self) -> str:  # noqa: N802
            import tempfile

            tmp = tempfile.TemporaryDirectory()
            self.addCleanup(tmp.cleanup)
            return tmp.name

else:  # pragma: no cover

    def test_the_standard_dbm_tests_are_there():
        pytest.fail("this Python has no `test` package: test.test_dbm cannot run")


def test_changes_between_syncs_are_one_transaction_and_reads_see_them(store_path):
    with walstore.dbm.open(store_path, "c") as db:
        db[b"a"] = b"1"
        db["b"] = "2"
        assert db[b"a"] == b"1" and db.keys() == [b"a", b"b"] and len(db) == 2
        with walstore.open(store_path, read_only=True) as other:
            assert len(other) == 0  # nothing committed before sync()
        before = walstore.open(store_path)
        watch = before.watch()
        db.sync()
        changes = {watch.next(timeout=10), watch.next(timeout=10)}
        assert changes == {("a", b"1"), ("b", b"2")}
        del db[b"a"]
        assert b"a" not in db and db.get(b"a") is None and before.get_bytes("a") == b"1"
        with pytest.raises(KeyError):
            del db[b"a"]
        before.close()
    with walstore.dbm.open(store_path, "r") as db:
        assert db.keys() == [b"b"] and db.firstkey() == b"b" and db.nextkey(b"b") is None
        with pytest.raises(walstore.dbm.error):
            db[b"x"] = b"y"
    with walstore.dbm.open(store_path, "n") as db:
        assert db.keys() == []
        db[b"c"] = b"3"
    with walstore.dbm.open(store_path, "w") as db:
        assert db.keys() == [b"c"]
    db.close()  # twice is fine
    with pytest.raises(walstore.dbm.error):
        db[b"c"]


def test_errors_are_oserrors(tmp_path):
    assert issubclass(walstore.dbm.error, OSError)
    with pytest.raises(walstore.dbm.error):
        walstore.dbm.open(str(tmp_path / "missing"), "r")
    with pytest.raises(walstore.dbm.error):
        walstore.dbm.open(str(tmp_path / "missing"), "w")
    with pytest.raises(ValueError):
        walstore.dbm.open(str(tmp_path / "x"), "q")


SHELVE_KILLED = """
    import os, shelve, sys, walstore.dbm
    path = sys.argv[1]
    shelf = shelve.Shelf(walstore.dbm.open(path, "c"))
    for n in range(1, 1_000_000):
        for name in ("a", "b", "c", "d"):
            shelf[name] = {"save": n, "pad": "x" * 500}
        shelf.sync()
        print(n, flush=True)
"""


def test_a_shelve_killed_mid_save_keeps_one_whole_save(store_path):
    from conftest import child_script

    child = subprocess.Popen(
        child_script(SHELVE_KILLED) + [store_path], stdout=subprocess.PIPE, text=True
    )
    acked = 0
    for line in child.stdout:  # kill it once it has completed 20 saves
        acked = int(line)
        if acked >= 20:
            break
    child.kill()
    child.wait()
    with shelve.Shelf(walstore.dbm.open(store_path, "r")) as shelf:
        saves = {shelf[name]["save"] for name in "abcd"}
    assert len(saves) == 1 and saves.pop() >= acked
