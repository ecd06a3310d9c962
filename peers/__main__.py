"""``python -m peers``: see ``peers/run.py``."""

import sys

from peers.run import main

sys.exit(main())
