"""``python -m ksef_client.cli``."""

import sys

from ksef_client.cli import main

sys.exit(main())
