"""``python -m rfqbot.sim``: same as ``rfqbot sim``."""

import sys

from rfqbot.sim.cli import main

sys.exit(main(sys.argv[1:]))
