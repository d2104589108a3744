"""``python -m hwgen``: the `hwgen` command."""

import sys

from .cli import main

sys.exit(main())
