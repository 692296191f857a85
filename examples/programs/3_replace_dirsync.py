"""Program 3: program 2 plus an fsync of the directory before the save is acknowledged."""
import os

from savelib import document, fsync_dir, main_loop


def atomic_json_write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save(directory, files, n):
    for name in files:
        atomic_json_write(os.path.join(directory, name), document(name, n))
    fsync_dir(directory)


main_loop(save)
