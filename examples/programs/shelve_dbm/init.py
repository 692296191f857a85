"""--init: a shelf in argv[2] (over the dbm module argv[1] names) holding save 0."""
from shelvelib import open_shelf, save

shelf = open_shelf("n")
save(shelf, 0)
shelf.close()
