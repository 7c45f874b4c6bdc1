"""``python -m hybridpg``: the same command line as the ``hybridpg`` script."""

import sys

from hybridpg.cli import main

if __name__ == "__main__":
    sys.exit(main())
