"""``python -m ksef_client.mock``: same as the ``ksef-mock`` command."""

import sys

from ksef_client.mock.server import main

sys.exit(main())
