"""A Python atomic writer, the usual recipe: a temporary file in the same directory, written,
flushed and fsynced, os.replace()d over the target, then the directory fsynced; three saves of
a JSON document. Verdict: PASS.  Usage: atomic_writer.py init|run|check DIR"""
import json, os, sys, tempfile

def atomic_write(path, data):
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data); f.flush(); os.fsync(f.fileno())
    os.replace(tmp, path)
    dfd = os.open(d, os.O_RDONLY)
    try: os.fsync(dfd)
    finally: os.close(dfd)

what, d = sys.argv[1], sys.argv[2]
path = os.path.join(d, "f.json")
if what == "init":
    atomic_write(path, b'{"save": 0}')
elif what == "run":
    for n in (1, 2, 3):
        atomic_write(path, json.dumps({"save": n}).encode())
        print("saved %d" % n, flush=True)
else:
    acked = 0
    for line in open(os.environ["CRASHTEST_ACKED"]):
        if line.startswith("saved "): acked = int(line.split()[1])
    try:
        ok = json.load(open(path))["save"] >= acked
    except Exception as e:
        print("f.json: %s" % e); sys.exit(1)
    sys.exit(0 if ok else 1)
