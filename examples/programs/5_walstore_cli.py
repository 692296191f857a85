"""Program 5: the same save as one walstore transaction, through the `walstore` command
(`$WALSTORE`, default `walstore` on PATH); a checkpoint after the second save folds the log
into snapshot files."""
import os
import subprocess

from savelib import document, main_loop

WALSTORE = os.environ.get("WALSTORE", "walstore")


def save(directory, files, n):
    store = os.path.join(directory, "store")
    pairs = ["%s=%s" % (name, document(name, n)) for name in files]
    subprocess.run([WALSTORE, "set", store] + pairs, check=True)
    if n == 2:
        subprocess.run([WALSTORE, "checkpoint", store], check=True, stdout=subprocess.DEVNULL)


main_loop(save)
