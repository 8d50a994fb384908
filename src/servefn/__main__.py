"""``python -m servefn``: the same command line as the ``servefn`` script."""

import sys

from servefn.cli._main import main

if __name__ == "__main__":
    sys.exit(main())
