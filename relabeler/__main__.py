"""``python -m relabeler``: the command line, where the virtualenv's ``bin`` is not on PATH."""

import sys

from relabeler.cli import main

sys.exit(main())
