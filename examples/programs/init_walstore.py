"""--init for program 5: a store in argv[1]/store holding save 0 of the four files."""
import os
import subprocess
import sys

from savelib import FILES, document

WALSTORE = os.environ.get("WALSTORE", "walstore")
store = os.path.join(sys.argv[1], "store")
subprocess.run([WALSTORE, "set", store] + ["%s=%s" % (n, document(n, 0)) for n in FILES], check=True)
