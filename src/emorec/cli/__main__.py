"""``python -m emorec.cli``: the same as the ``emorec`` command."""

import sys

from emorec.cli import main

sys.exit(main())
