"""One decision on one RFQ's quotes: the chain, the engine's expiry guard, then the risk limits.

A pure function of its arguments (the kill switch is asked through a callable, so the engine can
read its file and replay can answer from the journal), shared by the engine and by ``rfqbot
replay``: what replay says a config *would* do is computed by the very code the daemon runs.
The caller applies the result (state, journal, sends); nothing here changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Literal

from rfqbot.records import Quote
from rfqbot.engine.risk import RiskLedger, RiskSettings, check_accept
from strategies import DecisionContext, MarketContext, RfqView
from strategies.base import trade_amounts
from strategies.chain import Chain

Action = Literal["accept", "decline", "wait", "blocked", "none"]


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do, and the journal payload that explains it (``final``, ``reason``, ``verdicts``, ...).

    ``quote`` is the quote acted on (accepted, declined, blocked, or named by a decline that
    cannot be sent); ``until_ms`` is a wait's deadline; ``amounts`` what an accept would trade.
    """

    action: Action
    payload: dict[str, Any]
    quote: Quote | None = None
    until_ms: int | None = None
    amounts: dict[str, Decimal] = field(default_factory=dict)

    @property
    def quote_id(self) -> str | None:
        return self.quote.quote_id if self.quote is not None else None


def _none(reason: str, **extra: Any) -> Decision:
    return Decision("none", {"final": "none", "action": "none", "reason": reason, "verdicts": [], **extra})


def decide_quotes(chain: Chain | None, view: RfqView | None, quotes: tuple[Quote, ...], market: MarketContext,
                  now_ms: int, *, min_time_left_ms: int, risk: RiskSettings, ledger: RiskLedger,
                  kill_switch: Callable[[], bool], declined: frozenset[str] | set[str] = frozenset(),
                  pair_text: str = "", trading_status: str | None = None) -> Decision:
    """Decide on ``quotes`` (already without quotes the venue refused) at venue time ``now_ms``.

    ``view`` is None when the RFQ's pair is not a tradable pair; ``trading_status`` is the pair's
    ``get-pairs`` status (``CLOSED``: never accepted); ``declined`` holds manual quotes
    already declined (a decline is sent once). ``kill_switch`` is called only when an accept is
    about to pass the risk checks, so its file is read no more often than needed.
    """
    if not quotes:
        return _none("no quotes left to consider")
    if view is None:
        return _none(f"pair of {pair_text} is not a tradable pair (get-pairs); never accepted")
    if trading_status is not None and trading_status.strip().upper() == "CLOSED":
        return _none(f"{view.pair} trading status is CLOSED (get-pairs): never accepted")
    if chain is None:
        return _none(f"no strategy chain for {view.pair} (nor '*'); quotes left to expire")
    result = chain.decide(DecisionContext(view, quotes, market, now_ms))
    payload: dict[str, Any] = {"final": result.kind, "reason": result.reason, "verdicts": result.steps_json()}
    if result.kind == "wait":
        return _capped_wait(result.until_ms, quotes, now_ms, payload, min_time_left_ms=min_time_left_ms)
    if result.kind == "decline":
        target = next((q for q in quotes if q.quote_id == result.quote_id), None)
        if target is not None and target.manual and target.quote_id not in declined:
            return Decision("decline", {**payload, "action": "decline", "price": target.price}, quote=target)
        return Decision("none", {**payload, "action": "none"}, quote=target)
    if result.kind == "none":
        return Decision("none", {**payload, "action": "none"})
    return _guard_and_risk(result.allowed, view, now_ms, payload, min_time_left_ms=min_time_left_ms, risk=risk,
                           ledger=ledger, kill_switch=kill_switch)


def _capped_wait(until_ms: int | None, quotes: tuple[Quote, ...], now_ms: int, payload: dict[str, Any], *,
                 min_time_left_ms: int) -> Decision:
    """A wait, but never past the last moment any quote at hand could still be accepted.

    WHY: a plug-in may ask for any deadline; waking after every quote has fallen inside
    ``min_time_left_ms`` of its expiry can only end in "expire too soon". So the deadline is
    cut to the latest quote expiry minus ``min_time_left_ms``; when that moment has passed, the
    wait is pointless and nothing is done (a new quote set decides again).
    """
    useful = [q.expires_ms - min_time_left_ms for q in quotes if q.expires_ms is not None]
    last = max(useful) if useful else None
    if last is not None and last <= now_ms:
        return Decision("none", {**payload, "final": "none", "action": "none",
                                 "reason": f"{payload['reason']}; but every quote expires within "
                                           f"min_time_left_ms {min_time_left_ms}: waiting cannot help"})
    if last is not None and (until_ms is None or until_ms > last):
        payload = {**payload, "reason": f"{payload['reason']} (wait cut to {last}: the quotes' expiry minus "
                                        f"min_time_left_ms {min_time_left_ms})", "wait_requested_ms": until_ms}
        until_ms = last
    return Decision("wait", {**payload, "action": "wait", "until_ms": until_ms}, until_ms=until_ms)


def _guard_and_risk(allowed: tuple[Quote, ...], view: RfqView, now_ms: int, payload: dict[str, Any], *,
                    min_time_left_ms: int, risk: RiskSettings, ledger: RiskLedger,
                    kill_switch: Callable[[], bool]) -> Decision:
    """Walk the allowed quotes best first through the expiry guard, then check the risk limits."""
    too_late = []
    chosen = None
    for quote in allowed:
        left = None if quote.expires_ms is None else quote.expires_ms - now_ms
        if left is None or left < min_time_left_ms:
            too_late.append(f"{quote.quote_id}: " + ("no expiry time" if left is None else
                            f"expires in {left} ms by venue clock (< min_time_left_ms {min_time_left_ms})"))
            continue
        chosen = quote
        break
    if chosen is None:
        return Decision("none", {**payload, "final": "none", "action": "none",
                                 "reason": "allowed quotes expire too soon: " + "; ".join(too_late)})
    amounts = trade_amounts(view, chosen)
    block = check_accept(risk, ledger, amounts=amounts, now_ms=now_ms, kill_switch_engaged=kill_switch())
    payload = {**payload, "price": chosen.price, "amounts": amounts, "lp_name": chosen.lp_name,
               "expires_ms": chosen.expires_ms}
    if too_late:
        payload["skipped"] = too_late
    if block is not None:
        return Decision("blocked", {**payload, "action": "blocked", "blocked_by": block.limit,
                                    "reason": f"{payload['reason']}; blocked by {block}"},
                        quote=chosen, amounts=amounts)
    return Decision("accept", {**payload, "action": "accept"}, quote=chosen, amounts=amounts)
