"""walstore from Python against sqlite3 (WAL, synchronous=FULL), py-lmdb and the 4-file
atomic JSON write recipe (temp file, fsync, rename, directory fsync; per file, so not atomic
across the 4 files).

Workloads (every save durable when it returns):
  save-4.5k  one save of 4 JSON-like documents of 4.5 KB in total
  save-414k  the same with 414 KB in total
  load       a consistent load of the 4 documents (414 KB set), decoded
  get        one small value (the "meta" document of the 4.5 KB set), decoded
  rmw        4 processes x 50 read-modify-write increments of one counter
  one-shot   a fresh interpreter that opens the store, commits 3 small keys durably in one
             transaction and exits (wall time of the whole process, interpreter start-up
             included; the same for every engine)

Run: python benches/python/bench.py [--dir DIR] [--repeat N] [--json-out FILE]
(needs `pip install crates/walstore-python lmdb`). Prints a Markdown table: median
milliseconds per operation; for rmw, the wall time of all 200 increments.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import lmdb

import walstore

NAMES = ("messages", "tools", "memory", "meta")


def documents(total_bytes: int, version: int) -> Dict[str, dict]:
    """4 documents of about `total_bytes` of JSON in total (shares 4:2:1:1)."""
    shares = {"messages": 4, "tools": 2, "memory": 1, "meta": 1}
    docs = {}
    for name, share in shares.items():
        size = total_bytes * share // 8
        item = {"role": "user", "text": "lorem ipsum dolor sit amet " * 3, "n": 0}
        count = max(1, size // len(json.dumps(item)))
        docs[name] = {"version": version, "items": [dict(item, n=i) for i in range(count)]}
    return docs


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Walstore:
    name = "walstore"

    def __init__(self, root: str) -> None:
        self.store = walstore.open(os.path.join(root, "walstore"))

    def save(self, docs: Dict[str, dict]) -> None:
        self.store.update({"ctx/" + k: v for k, v in docs.items()})

    def load(self) -> Dict[str, dict]:
        with self.store.snapshot() as snap:
            return {k: snap["ctx/" + k] for k in NAMES}

    def get(self, name: str) -> dict:
        return self.store["ctx/" + name]

    def close(self) -> None:
        self.store.close()


class Sqlite:
    name = "sqlite3 (WAL, FULL)"

    def __init__(self, root: str) -> None:
        self.db = sqlite3.connect(os.path.join(root, "ctx.sqlite"), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)")

    def save(self, docs: Dict[str, dict]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        self.db.executemany(
            "INSERT OR REPLACE INTO kv VALUES (?, ?)",
            [(k, json.dumps(v)) for k, v in docs.items()],
        )
        self.db.execute("COMMIT")

    def load(self) -> Dict[str, dict]:
        self.db.execute("BEGIN")
        rows = dict(self.db.execute("SELECT k, v FROM kv").fetchall())
        self.db.execute("COMMIT")
        return {k: json.loads(rows[k]) for k in NAMES}

    def get(self, name: str) -> dict:
        row = self.db.execute("SELECT v FROM kv WHERE k = ?", (name,)).fetchone()
        return json.loads(row[0])

    def close(self) -> None:
        self.db.close()


class Lmdb:
    name = "py-lmdb"

    def __init__(self, root: str) -> None:
        self.env = lmdb.open(os.path.join(root, "lmdb"), map_size=1 << 30)  # sync=True

    def save(self, docs: Dict[str, dict]) -> None:
        with self.env.begin(write=True) as txn:
            for k, v in docs.items():
                txn.put(k.encode(), json.dumps(v).encode())

    def load(self) -> Dict[str, dict]:
        with self.env.begin() as txn:
            return {k: json.loads(txn.get(k.encode())) for k in NAMES}

    def get(self, name: str) -> dict:
        with self.env.begin() as txn:
            return json.loads(txn.get(name.encode()))

    def close(self) -> None:
        self.env.close()


class JsonFiles:
    name = "4 x atomic_json_write"

    def __init__(self, root: str) -> None:
        self.dir = os.path.join(root, "files")
        os.makedirs(self.dir, exist_ok=True)

    def write_one(self, name: str, doc: dict) -> None:
        path = os.path.join(self.dir, name + ".json")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(self.dir)

    def save(self, docs: Dict[str, dict]) -> None:
        for k, v in docs.items():
            self.write_one(k, v)

    def load(self) -> Dict[str, dict]:
        loaded = {}
        for k in NAMES:
            with open(os.path.join(self.dir, k + ".json")) as f:
                loaded[k] = json.load(f)
        return loaded

    def get(self, name: str) -> dict:
        with open(os.path.join(self.dir, name + ".json")) as f:
            return json.load(f)

    def close(self) -> None:
        pass


ENGINES = [Walstore, Sqlite, Lmdb, JsonFiles]


def median_ms(run: Callable[[int], None], repeat: int) -> float:
    times: List[float] = []
    for i in range(repeat):
        start = time.perf_counter()
        run(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def bench_engine(engine_class, root: str, repeat: int) -> Dict[str, float]:
    engine = engine_class(root)
    try:
        small = [documents(4_500, v) for v in range(2)]
        large = [documents(414_000, v) for v in range(2)]
        results = {
            "save-4.5k": median_ms(lambda i: engine.save(small[i % 2]), repeat),
            "save-414k": median_ms(lambda i: engine.save(large[i % 2]), max(10, repeat // 4)),
        }
        assert engine.load()["meta"]["version"] in (0, 1)
        results["load"] = median_ms(lambda i: engine.load(), repeat)
        engine.save(small[0])
        assert engine.get("meta")["version"] == 0
        results["get"] = median_ms(lambda i: engine.get("meta"), repeat * 10)
    finally:
        engine.close()
    return results


def rmw_worker(kind: str, root: str, count: int) -> None:
    """One process of the rmw workload: `count` increments of one shared counter."""
    if kind == "walstore":
        store = walstore.open(os.path.join(root, "walstore"))
        for _ in range(count):
            with store.transaction() as tx:
                tx["counter"] = tx.get("counter", 0) + 1
        store.close()
    elif kind == "sqlite":
        db = sqlite3.connect(os.path.join(root, "rmw.sqlite"), isolation_level=None, timeout=60)
        db.execute("PRAGMA synchronous=FULL")
        for _ in range(count):
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT v FROM kv WHERE k='counter'").fetchone()
            db.execute("INSERT OR REPLACE INTO kv VALUES ('counter', ?)", (int(row[0]) + 1,))
            db.execute("COMMIT")
    elif kind == "lmdb":
        env = lmdb.open(os.path.join(root, "lmdb"), map_size=1 << 30)
        for _ in range(count):
            with env.begin(write=True) as txn:
                txn.put(b"counter", str(int(txn.get(b"counter") or b"0") + 1).encode())
    elif kind == "files":
        path = os.path.join(root, "files", "counter.json")
        with open(os.path.join(root, "files", "lock"), "w") as lock:
            for _ in range(count):
                fcntl.flock(lock, fcntl.LOCK_EX)
                with open(path) as f:
                    n = json.load(f)["n"]
                JsonFiles.write_one(JsonFiles(root), "counter", {"n": n + 1})
                fcntl.flock(lock, fcntl.LOCK_UN)


def rmw_setup(kind: str, root: str) -> None:
    if kind == "sqlite":
        db = sqlite3.connect(os.path.join(root, "rmw.sqlite"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)")
        db.execute("INSERT OR REPLACE INTO kv VALUES ('counter', '0')")
        db.close()
    elif kind == "files":
        os.makedirs(os.path.join(root, "files"), exist_ok=True)
        JsonFiles(root).write_one("counter", {"n": 0})
    elif kind == "walstore":
        with walstore.open(os.path.join(root, "walstore")) as store:
            store["counter"] = 0
    elif kind == "lmdb":
        env = lmdb.open(os.path.join(root, "lmdb"), map_size=1 << 30)
        with env.begin(write=True) as txn:
            txn.put(b"counter", b"0")
        env.close()


def rmw_result(kind: str, root: str) -> int:
    if kind == "walstore":
        with walstore.open(os.path.join(root, "walstore")) as store:
            return store["counter"]
    if kind == "sqlite":
        db = sqlite3.connect(os.path.join(root, "rmw.sqlite"))
        return int(db.execute("SELECT v FROM kv WHERE k='counter'").fetchone()[0])
    if kind == "lmdb":
        env = lmdb.open(os.path.join(root, "lmdb"), map_size=1 << 30)
        with env.begin() as txn:
            return int(txn.get(b"counter"))
    with open(os.path.join(root, "files", "counter.json")) as f:
        return json.load(f)["n"]


def bench_rmw(kind: str, root: str, processes: int = 4, count: int = 50) -> float:
    """Wall milliseconds for `processes` x `count` increments (process start excluded: the
    workers start together when they all exist)."""
    rmw_setup(kind, root)
    go = os.path.join(root, f"go-{kind}")
    script = (
        "import os, sys, time; sys.path.insert(0, sys.argv[4]); import bench\n"
        "while not os.path.exists(sys.argv[5]): time.sleep(0.001)\n"
        "bench.rmw_worker(sys.argv[1], sys.argv[2], int(sys.argv[3]))\n"
    )
    here = str(Path(__file__).resolve().parent)
    workers = [
        subprocess.Popen([sys.executable, "-c", script, kind, root, str(count), here, go])
        for _ in range(processes)
    ]
    time.sleep(1.0)  # every worker has imported and is polling
    start = time.perf_counter()
    Path(go).touch()
    for worker in workers:
        if worker.wait() != 0:
            raise RuntimeError(f"{kind} worker failed")
    elapsed = (time.perf_counter() - start) * 1000
    total = rmw_result(kind, root)
    if total != processes * count:
        raise RuntimeError(f"{kind}: {total} increments, expected {processes * count}")
    return elapsed


ONE_SHOT = {
    "walstore": (
        "import sys, walstore\n"
        "with walstore.open(sys.argv[1] + '/walstore') as s:\n"
        "    s.update({'a': 1, 'b': 2, 'c': 3})\n"
    ),
    "sqlite": (
        "import sys, sqlite3\n"
        "db = sqlite3.connect(sys.argv[1] + '/one.sqlite', isolation_level=None)\n"
        "db.execute('PRAGMA journal_mode=WAL'); db.execute('PRAGMA synchronous=FULL')\n"
        "db.execute('CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)')\n"
        "db.execute('BEGIN IMMEDIATE')\n"
        "db.executemany('INSERT OR REPLACE INTO kv VALUES (?, ?)', [('a', '1'), ('b', '2'), ('c', '3')])\n"
        "db.execute('COMMIT'); db.close()\n"
    ),
    "lmdb": (
        "import sys, lmdb\n"
        "env = lmdb.open(sys.argv[1] + '/lmdb', map_size=1 << 30)\n"
        "with env.begin(write=True) as t:\n"
        "    [t.put(k, v) for k, v in ((b'a', b'1'), (b'b', b'2'), (b'c', b'3'))]\n"
        "env.close()\n"
    ),
    "files": (
        "import sys, os, json\n"
        "sys.path.insert(0, sys.argv[2]); import bench\n"
        "d = bench.JsonFiles(sys.argv[1])\n"
        "[d.write_one(k, {'v': v}) for k, v in (('a', 1), ('b', 2), ('c', 3))]\n"
    ),
}


def bench_one_shot(kind: str, root: str, repeat: int) -> float:
    """Median wall milliseconds of a fresh interpreter committing 3 keys durably."""
    here = str(Path(__file__).resolve().parent)
    command = [sys.executable, "-c", ONE_SHOT[kind], root, here]
    subprocess.run(command, check=True)  # creates the store: not timed
    return median_ms(lambda i: subprocess.run(command, check=True), repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", help="where the stores go (default: a temporary directory)")
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--json-out")
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="walstore-pybench-", dir=args.dir)
    results: Dict[str, Dict[str, float]] = {}
    try:
        for engine, kind in zip(ENGINES, ["walstore", "sqlite", "lmdb", "files"]):
            sub = os.path.join(root, kind)
            os.makedirs(sub)
            results[engine.name] = bench_engine(engine, sub, args.repeat)
            rmw_root = os.path.join(root, kind + "-rmw")
            os.makedirs(rmw_root)
            results[engine.name]["rmw"] = bench_rmw(kind, rmw_root)
            one_root = os.path.join(root, kind + "-one-shot")
            os.makedirs(one_root)
            results[engine.name]["one-shot"] = bench_one_shot(kind, one_root, 20)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print_table(results)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))


def print_table(results: Dict[str, Dict[str, float]]) -> None:
    base = results["walstore"]
    columns = ["save-4.5k", "save-414k", "load", "get", "rmw", "one-shot"]
    print("| engine | save 4 docs, 4.5 KB (ms) | save 4 docs, 414 KB (ms) | load 4 docs, 414 KB (ms) | get 1 doc (ms) | 4 procs x 50 RMW (ms, wall) | one-shot process (ms) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, row in results.items():
        cells = []
        for column in columns:
            cell = f"{row[column]:.3f}"
            if name != "walstore":
                cell += f" ({base[column] / row[column]:.2f}x)"
            cells.append(cell)
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nIn brackets: walstore's time divided by the engine's (below 1: walstore is faster).")


if __name__ == "__main__":
    main()
