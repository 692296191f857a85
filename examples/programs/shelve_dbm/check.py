"""--check: the shelf opens read-only and holds the four documents, all from one save (a
sync() is atomic), at least as new as the last `saved N` line in $CRASHTEST_ACKED."""
import json
import os
import sys

from shelvelib import FILES, open_shelf

acked = 0
with open(os.environ["CRASHTEST_ACKED"]) as f:
    for line in f:
        if line.startswith("saved "):
            acked = int(line.split()[1])
try:
    shelf = open_shelf("r")
    saves = {name: json.loads(shelf[name])["save"] for name in FILES}
    shelf.close()
except Exception as e:  # a shelf that does not open or read is a violation
    print("the shelf does not read: %s: %s" % (type(e).__name__, e))
    sys.exit(1)
if len(set(saves.values())) != 1:
    print("documents from different saves: %s" % saves)
    sys.exit(1)
if min(saves.values()) < acked:
    print("holds save %d but save %d was acknowledged" % (min(saves.values()), acked))
    sys.exit(1)
