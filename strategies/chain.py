"""Composition of strategies into a per-pair chain, and the per-pair chain set.

Semantics (the README's strategy reference repeats them):

1. Every step is evaluated and its verdict recorded, even after a decline: the journal shows
   what each strategy thought, not only the one that decided.
2. The first ``decline`` in chain order wins, with its reason.
3. A ``wait`` whose deadline is still ahead holds the decision until then (the earliest such
   deadline is when the engine re-evaluates); a wait whose deadline has passed counts as pass.
4. A quote is allowed only if every step allows it; among allowed quotes the best by the
   venue's ranking is chosen (``rank``, else price in the account's favour, then earliest).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Mapping

from rfqbot.records import Quote, Side
from strategies.base import DecisionContext, Strategy, Verdict

FinalKind = Literal["accept", "decline", "wait", "none"]


@dataclass(frozen=True, slots=True)
class StepVerdict:
    """One step's verdict, with the step's position and name for the journal."""

    index: int
    name: str
    verdict: Verdict

    def to_json(self) -> dict[str, Any]:
        return {"step": self.index, "use": self.name, **self.verdict.to_json()}


@dataclass(frozen=True, slots=True)
class ChainResult:
    """The chain's decision: final kind, the chosen quote, every step's verdict, and the allowed
    quotes best first (the engine applies its own guards, e.g. expiry, down this list)."""

    kind: FinalKind
    reason: str
    quote_id: str | None
    price: Decimal | None
    until_ms: int | None
    allowed: tuple[Quote, ...]
    steps: tuple[StepVerdict, ...]

    def steps_json(self) -> list[dict[str, Any]]:
        return [s.to_json() for s in self.steps]


def rank_quotes(quotes: tuple[Quote, ...] | list[Quote], side: Side) -> tuple[Quote, ...]:
    """Best first by the venue's ranking: ``rank`` when every quote has one, else price in the
    account's favour (buying base: lowest first; selling base: highest first), then earliest."""
    quotes = list(quotes)
    if quotes and all(q.rank is not None for q in quotes):
        return tuple(sorted(quotes, key=lambda q: (q.rank, q.submitted_ms or 0)))

    def key(q: Quote) -> tuple[Decimal, int]:
        price = q.price if side is Side.BUY_BASE else -q.price
        return price, q.submitted_ms or 0

    return tuple(sorted(quotes, key=key))


class Chain:
    """An ordered list of strategies for one pair (or ``*``)."""

    def __init__(self, pair: str, steps: tuple[Strategy, ...]) -> None:
        self.pair = pair
        self.steps = steps

    def describe(self) -> list[dict[str, Any]]:
        return [s.describe() for s in self.steps]

    def decide(self, ctx: DecisionContext) -> ChainResult:
        """Run every step on ``ctx`` and combine their verdicts (see module docstring)."""
        recorded = tuple(StepVerdict(i, s.name, _safe_evaluate(s, ctx)) for i, s in enumerate(self.steps))
        ranked = rank_quotes(ctx.quotes, ctx.rfq.side)

        def result(kind: FinalKind, reason: str, quote: Quote | None = None, until: int | None = None,
                   allowed: tuple[Quote, ...] = ()) -> ChainResult:
            return ChainResult(kind, reason, quote.quote_id if quote else None, quote.price if quote else None,
                               until, allowed, recorded)

        by_id = {q.quote_id: q for q in ctx.quotes}
        for step in recorded:
            if step.verdict.kind == "decline":
                target = by_id.get(step.verdict.quote_id or "")
                return result("decline", f"{step.name}: {step.verdict.reason}", target)

        waits = [s for s in recorded if s.verdict.kind == "wait" and (s.verdict.until_ms or 0) > ctx.now_ms]
        allowed_ids = set(by_id)
        reasons: dict[str, str] = {}
        for step in recorded:
            v = step.verdict
            if v.kind == "accept":
                for qid in list(allowed_ids):
                    if qid != v.quote_id:
                        allowed_ids.discard(qid)
                        reasons.setdefault(qid, f"{step.name}: prefers quote {v.quote_id}")
            for qid, why in v.rejected.items():
                if qid in allowed_ids:
                    allowed_ids.discard(qid)
                    reasons.setdefault(qid, f"{step.name}: {why}")
        allowed = tuple(q for q in ranked if q.quote_id in allowed_ids)

        if waits:
            first = min(waits, key=lambda s: s.verdict.until_ms or 0)
            return result("wait", f"{first.name}: {first.verdict.reason}", until=first.verdict.until_ms,
                          allowed=allowed)
        if not allowed:
            if not ctx.quotes:
                return result("none", "no quotes")
            best = ranked[0]
            return result("none", f"no acceptable quote; best {best.quote_id} at {best.price}: "
                                  f"{reasons.get(best.quote_id, 'not allowed')}")
        chosen = allowed[0]
        return result("accept", f"best allowed quote {chosen.quote_id} at {chosen.price} "
                                f"({len(allowed)} of {len(ctx.quotes)} allowed)", chosen, allowed=allowed)


def _safe_evaluate(strategy: Strategy, ctx: DecisionContext) -> Verdict:
    """A strategy bug declines (never accepts): a crash must not become an accept or kill the engine."""
    try:
        verdict = strategy.evaluate(ctx)
    except Exception as exc:  # noqa: BLE001 - user plug-ins may raise anything
        return Verdict.decline(f"strategy raised {type(exc).__name__}: {exc}")
    if not isinstance(verdict, Verdict):
        return Verdict.decline(f"strategy returned {type(verdict).__name__}, not a Verdict")
    return verdict


class ChainSet:
    """Chains by pair; ``for_pair`` falls back to ``*``; a pair with neither has no chain."""

    def __init__(self, chains: Mapping[str, Chain] | None = None) -> None:
        self._chains = dict(chains or {})

    def for_pair(self, pair: str) -> Chain | None:
        return self._chains.get(pair) or self._chains.get("*")

    @property
    def pairs(self) -> list[str]:
        return sorted(self._chains)

    def describe(self) -> dict[str, list[dict[str, Any]]]:
        return {pair: chain.describe() for pair, chain in sorted(self._chains.items())}

    def __len__(self) -> int:
        return len(self._chains)
