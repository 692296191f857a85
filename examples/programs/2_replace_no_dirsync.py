"""Program 2: each file written to a temporary file, fsynced, os.replace()d into place; the
directory is never fsynced."""
import os

from savelib import document, main_loop


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


main_loop(save)
