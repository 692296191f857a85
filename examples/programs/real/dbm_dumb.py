"""Python's shelve over dbm.dumb (the pure-Python dbm every CPython has): three saves of one
key, each through shelve.open(...) and close(). dbm.dumb rewrites its .dat file in place and
its .dir index through a rename, never fsyncing. Verdict: FAIL.
Usage: dbm_dumb.py init|run|check DIR"""
import dbm.dumb, os, shelve, sys

what, d = sys.argv[1], sys.argv[2]
path = os.path.join(d, "state")

def store():
    return shelve.Shelf(dbm.dumb.open(path, "c"))

if what == "init":
    with store() as s: s["save"] = 0
elif what == "run":
    for n in (1, 2, 3):
        with store() as s: s["save"] = n
        print("saved %d" % n, flush=True)
else:
    acked = 0
    for line in open(os.environ["CRASHTEST_ACKED"]):
        if line.startswith("saved "): acked = int(line.split()[1])
    try:
        with shelve.Shelf(dbm.dumb.open(path, "r")) as s: save = s["save"]
    except Exception as e:
        print("state: %r" % e); sys.exit(1)
    if save < acked:
        print("state holds save %d, save %d was acknowledged" % (save, acked)); sys.exit(1)
