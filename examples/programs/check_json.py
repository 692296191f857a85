"""--check: every file in argv[2:] (default: the four) exists in argv[1], parses as JSON and
holds a save at least as new as the last `saved N` line in $CRASHTEST_ACKED. Saves need not
be atomic across files (a crash between two files may leave them at different saves)."""
import json
import os
import sys

from savelib import FILES

directory = sys.argv[1]
acked = 0
with open(os.environ["CRASHTEST_ACKED"]) as f:
    for line in f:
        if line.startswith("saved "):
            acked = int(line.split()[1])
problems = []
for name in sys.argv[2:] or FILES:
    path = os.path.join(directory, name)
    try:
        with open(path) as f:
            raw = f.read()
    except FileNotFoundError:
        problems.append("%s: missing" % name)
        continue
    try:
        save = json.loads(raw)["save"]
    except (ValueError, KeyError, TypeError) as e:
        problems.append("%s: not a saved document (%s): %r" % (name, e, raw[:60]))
        continue
    if save < acked:
        problems.append("%s: holds save %d but save %d was acknowledged" % (name, save, acked))
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
