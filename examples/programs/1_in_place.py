"""Program 1 (seed 000 as written): rewrites the four JSON files in place, no fsync."""
import os

from savelib import document, main_loop


def save(directory, files, n):
    for name in files:
        with open(os.path.join(directory, name), "w") as f:
            f.write(document(name, n))


main_loop(save)
