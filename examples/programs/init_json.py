"""--init: writes save 0 of the given files into argv[1]."""
import os
import sys

from savelib import FILES, document

directory = sys.argv[1]
for name in sys.argv[2:] or FILES:
    with open(os.path.join(directory, name), "w") as f:
        f.write(document(name, 0))
