"""Program 6: the same save as one transaction through the Python package `walstore` (in
process; `pip install ./crates/walstore-python`). The store is initialised and checked with the
`walstore` command (init_walstore.py, check_walstore.py)."""
import os

import walstore

from savelib import document, main_loop

stores = {}


def save(directory, files, n):
    if directory not in stores:
        stores[directory] = walstore.open(os.path.join(directory, "store"))
    store = stores[directory]
    with store.transaction() as tx:
        for name in files:
            tx[name] = document(name, n)


main_loop(save)
for store in stores.values():
    store.close()
