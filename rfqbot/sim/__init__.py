"""rfqbot's venue simulator: an independent HashKey Market Place on loopback.

Written from the venue documents, not from rfqbot's client: nothing here imports rfqbot code
outside ``rfqbot.sim``, so a misunderstanding shared by client and simulator cannot hide.
"""

from rfqbot.sim.config import LpConfig, PairConfig, SimConfig, load_yaml
from rfqbot.sim.server import Simulator

__all__ = ["LpConfig", "PairConfig", "SimConfig", "Simulator", "load_yaml"]
