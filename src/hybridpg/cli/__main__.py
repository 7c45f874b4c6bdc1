"""``python -m hybridpg.cli``."""

import sys

from hybridpg.cli import main

sys.exit(main())
