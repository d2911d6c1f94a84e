"""``python -m alignment undo RUN_ID``: the same as the ``alignment`` command."""

import sys

from alignment.cli import main

sys.exit(main())
