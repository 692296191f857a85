"""--run: saves 1 to SAVES of the four documents into the shelf, each followed by sync(),
printing `saved N` after each sync() returned (what the checker holds the program to)."""
from shelvelib import SAVES, open_shelf, save

shelf = open_shelf("w")
for n in range(1, SAVES + 1):
    save(shelf, n)
    print("saved %d" % n, flush=True)
shelf.close()
