"""``python -m rfqbot.cli``: same as the ``rfqbot`` console script."""

import sys

from rfqbot.cli import main

sys.exit(main())
