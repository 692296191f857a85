"""What the example programs save: the seed-000 shape, a context manager's state in four JSON
files, each holding the number of the save that wrote it."""

import json
import os
import sys

FILES = ["context.json", "history.json", "settings.json", "index.json"]
SAVES = 3


def document(name, save):
    # About 700 bytes: two 512-byte sectors, so torn writes have something to tear.
    return json.dumps({"file": name, "save": save, "notes": ["entry %d of save %d" % (i, save) for i in range(30)]}, indent=1)


def main_loop(save_one, files=FILES):
    """Runs `SAVES` saves of `files` in directory argv[1], printing `saved N` after each one
    returned (the acknowledgement the checker holds the program to)."""
    directory = sys.argv[1]
    for save in range(1, SAVES + 1):
        save_one(directory, files, save)
        print("saved %d" % save, flush=True)


def fsync_dir(directory):
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
