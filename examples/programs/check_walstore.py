"""--check for program 5: the store opens, holds the four documents, all from one save (a
walstore transaction is atomic) at least as new as the last acknowledged one."""
import json
import os
import subprocess
import sys

from savelib import FILES

WALSTORE = os.environ.get("WALSTORE", "walstore")
store = os.path.join(sys.argv[1], "store")
acked = 0
with open(os.environ["CRASHTEST_ACKED"]) as f:
    for line in f:
        if line.startswith("saved "):
            acked = int(line.split()[1])
out = subprocess.run([WALSTORE, "--json", "get", store] + FILES, capture_output=True, text=True)
try:
    entries = json.loads(out.stdout)["entries"]
except (ValueError, KeyError):
    print("walstore get failed (exit %d): %s %s" % (out.returncode, out.stdout, out.stderr))
    sys.exit(1)
saves = {}
for e in entries:
    if not e.get("found"):
        print("%s: missing" % e["key"])
        sys.exit(1)
    if "json" in e:  # a typed value (the Python package stores str as a typed string)
        doc = json.loads(e["json"])
        doc = json.loads(doc) if isinstance(doc, str) else doc
    else:
        doc = json.loads(e["value"])
    saves[e["key"]] = doc["save"]
if len(set(saves.values())) != 1:
    print("files from different saves: %s" % saves)
    sys.exit(1)
if min(saves.values()) < acked:
    print("holds save %d but save %d was acknowledged" % (min(saves.values()), acked))
    sys.exit(1)
