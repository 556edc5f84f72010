"""Accept/decline strategies: pure functions of (RFQ, quotes, market context, time).

The config loader calls ``compile_chains``; the engine calls ``ChainSet.for_pair(pair).decide(ctx)``.
"""

from strategies.base import (
    DecisionContext, MarketContext, Param, ReferencePrice, RfqView, Strategy, Verdict,
)
from strategies.builtin import BUILTINS
from strategies.chain import Chain, ChainResult, ChainSet, StepVerdict, rank_quotes
from strategies.registry import compile_chains, resolve

__all__ = [
    "BUILTINS", "Chain", "ChainResult", "ChainSet", "DecisionContext", "MarketContext", "Param",
    "ReferencePrice", "RfqView", "StepVerdict", "Strategy", "Verdict", "compile_chains", "rank_quotes", "resolve",
]
