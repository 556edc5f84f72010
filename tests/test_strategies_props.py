"""Property tests (hypothesis): limits hold in any chain, decisions are deterministic, and the chain's
composition rules (first decline wins, waits honoured until their deadline, best allowed quote)."""

from __future__ import annotations

from decimal import Decimal
from types import MappingProxyType

from hypothesis import given, settings, strategies as st

from rfqbot.records import Quote, QuoteMode, Side
from strategies import DecisionContext, MarketContext, ReferencePrice, RfqView, Strategy, Verdict, compile_chains
from strategies.chain import Chain, rank_quotes

NOW = 1_760_000_000_000
prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("200000"), places=2)


@st.composite
def quote_sets(draw, min_size=1):
    n = draw(st.integers(min_size, 6))
    out = []
    for i in range(n):
        out.append(Quote(f"q{i}", "R1", draw(prices), buy_ccy=None, sell_ccy=None,
                         lp_name=draw(st.sampled_from(["A", "B", "C", None])),
                         mode=draw(st.sampled_from([QuoteMode.REAL_TIME, QuoteMode.DELAYED])),
                         rank=None, submitted_ms=NOW - draw(st.integers(0, 5000)),
                         expires_ms=NOW + draw(st.integers(-1000, 60_000)), manual=draw(st.booleans())))
    return out


def view(side: Side) -> RfqView:
    buy, sell = ("BTC", "USDT") if side is Side.BUY_BASE else ("USDT", "BTC")
    return RfqView("R1", "BTC/USDT", side, buy, sell, sell_amount=Decimal("1000"), expires_ms=NOW + 600_000)


OPTIONAL_STEPS = [
    {"use": "time_left", "min_ms": 2000},
    {"use": "lp_filter", "deny": ["C"]},
    {"use": "settlement", "mode": "real-time"},
    {"use": "reference_band", "max_bps": "300"},
    {"use": "wait_for_quotes", "min_quotes": 2, "max_wait_ms": 2000},
    {"use": "size_limits", "max": {"USDT": "5000"}},
    {"use": "manual_quotes", "limit_price": "150000", "outside": "leave"},
]


@settings(max_examples=200, deadline=None)
@given(limit=prices, quotes=quote_sets(), side=st.sampled_from(list(Side)),
       extra=st.lists(st.sampled_from(range(len(OPTIONAL_STEPS))), unique=True, max_size=4),
       position=st.integers(0, 4), spot=prices, now_offset=st.integers(0, 10_000))
def test_no_chain_accepts_a_quote_worse_than_its_limit(limit, quotes, side, extra, position, spot, now_offset):
    steps = [OPTIONAL_STEPS[i] for i in extra]
    steps.insert(min(position, len(steps)), {"use": "price_limit", "limit_price": str(limit)})
    chain = compile_chains({"BTC/USDT": steps}).for_pair("BTC/USDT")
    ref = ReferencePrice(spot, NOW, "spot.trade")
    market = MarketContext(MappingProxyType({"spot": ref}))
    ctx = DecisionContext(view(side), tuple(quotes), market, NOW + now_offset)
    result = chain.decide(ctx)
    if result.kind == "accept":
        assert result.price <= limit if side is Side.BUY_BASE else result.price >= limit
    for allowed in result.allowed:
        assert allowed.price <= limit if side is Side.BUY_BASE else allowed.price >= limit
    assert chain.decide(ctx) == result, "same facts, same decision"
    assert len(result.steps) == len(steps), "every step's verdict is recorded"


class Fixed(Strategy):
    """A strategy whose verdict is fixed by the test (kind, rejected quotes, deadline)."""

    name = "fixed"

    def __init__(self, label: str, verdict: Verdict) -> None:
        super().__init__()
        self.label, self.verdict = label, verdict

    def evaluate(self, ctx: DecisionContext) -> Verdict:
        return self.verdict


@st.composite
def fixed_steps(draw, quote_ids):
    kind = draw(st.sampled_from(["allow", "decline", "wait", "pass", "accept"]))
    if kind == "allow":
        rejected = draw(st.lists(st.sampled_from(quote_ids), unique=True))
        return Verdict.allow("some", {q: "no" for q in rejected})
    if kind == "decline":
        return Verdict.decline("never")
    if kind == "wait":
        return Verdict.wait(NOW + draw(st.integers(-3000, 3000)), "later")
    if kind == "accept":
        return Verdict.accept(draw(st.sampled_from(quote_ids)), "this one")
    return Verdict.pass_()


@settings(max_examples=300, deadline=None)
@given(data=st.data(), quotes=quote_sets(), side=st.sampled_from(list(Side)))
def test_chain_order_semantics(data, quotes, side):
    ids = [q.quote_id for q in quotes]
    verdicts = data.draw(st.lists(fixed_steps(ids), min_size=1, max_size=5))
    chain = Chain("BTC/USDT", tuple(Fixed(f"s{i}", v) for i, v in enumerate(verdicts)))
    result = chain.decide(DecisionContext(view(side), tuple(quotes), MarketContext(), NOW))
    assert [s.verdict for s in result.steps] == verdicts
    declines = [v for v in verdicts if v.kind == "decline"]
    live_waits = [v.until_ms for v in verdicts if v.kind == "wait" and v.until_ms > NOW]
    allowed = set(ids)
    for v in verdicts:
        allowed -= set(v.rejected)
        if v.kind == "accept":
            allowed &= {v.quote_id}
    if declines:
        assert result.kind == "decline" and result.reason.endswith(declines[0].reason)
    elif live_waits:
        assert result.kind == "wait" and result.until_ms == min(live_waits)
    elif allowed:
        best = next(q for q in rank_quotes(quotes, side) if q.quote_id in allowed)
        assert result.kind == "accept" and result.quote_id == best.quote_id
    else:
        assert result.kind == "none"


@settings(max_examples=100, deadline=None)
@given(quotes=quote_sets(), deadline=st.integers(1, 10_000), probe=st.integers(0, 20_000))
def test_wait_is_honoured_until_its_deadline_and_not_after(quotes, deadline, probe):
    chain = Chain("BTC/USDT", (Fixed("w", Verdict.wait(NOW + deadline, "hold")),))
    result = chain.decide(DecisionContext(view(Side.BUY_BASE), tuple(quotes), MarketContext(), NOW + probe))
    if probe < deadline:
        assert result.kind == "wait" and result.until_ms == NOW + deadline
    else:
        assert result.kind == "accept"


@settings(max_examples=100, deadline=None)
@given(quotes=quote_sets(), start=st.integers(0, 3000), step=st.integers(1, 1500))
def test_wait_for_quotes_deadline_never_moves_and_ends(quotes, start, step):
    chain = compile_chains({"BTC/USDT": [{"use": "wait_for_quotes", "min_quotes": 9, "max_wait_ms": 4000,
                                          "expiry_margin_ms": 1000}]}).for_pair("BTC/USDT")
    deadlines = set()
    now = NOW + start
    for _ in range(20):
        result = chain.decide(DecisionContext(view(Side.BUY_BASE), tuple(quotes), MarketContext(), now))
        if result.kind != "wait":
            break
        deadlines.add(result.until_ms)
        assert result.until_ms > now
        now += step
    assert len(deadlines) <= 1
    assert result.kind != "wait" or now < NOW + 4000, "a wait ends by max_wait_ms after the first quote"
