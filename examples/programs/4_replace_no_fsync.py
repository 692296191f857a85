"""Program 4: one JSON file written to a temporary file and os.replace()d into place, the
directory fsynced, but the temporary file never fsynced (the rename can reach the disk
before the data)."""
import os

from savelib import document, fsync_dir, main_loop


def save(directory, files, n):
    for name in files:
        path = os.path.join(directory, name)
        with open(path + ".tmp", "w") as f:
            f.write(document(name, n))
        os.replace(path + ".tmp", path)
    fsync_dir(directory)


main_loop(save, files=["context.json"])
