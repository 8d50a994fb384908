"""``python -m servefn``: the same command line as the ``servefn`` script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
