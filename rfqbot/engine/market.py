"""The market around the account's RFQs: spot reference prices and recent public quotes per pair.

The engine feeds it from the public stream (``SpotTick`` from ``realtimes``/``trade``/``depth``
on a pair's spot symbol, ``PublicQuote`` from ``quotes``); replay feeds it from the journal's
``frame.spot`` and ``frame.public_quote`` events. Either way ``context(pair)`` is the
``MarketContext`` the strategies see, so a replayed decision sees the market the live one saw.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Iterable

from rfqbot.records import Pair, Quote
from strategies.base import MarketContext, ReferencePrice


class MarketBook:
    """Reference prices (spot) and the last ``recent_quotes`` public quotes, per pair."""

    def __init__(self, pairs: Iterable[Pair], recent_quotes: int = 50) -> None:
        self._by_symbol = {p.spot_symbol: p for p in pairs}
        self._pairs = list(self._by_symbol.values())
        self._refs: dict[str, dict[str, ReferencePrice]] = {}
        self._quotes: dict[str, deque[Quote]] = {}
        self._keep = recent_quotes

    def add_pairs(self, pairs: Iterable[Pair]) -> list[str]:
        """Start keeping context for pairs the venue listed after start (a get-pairs refresh);
        the names of those that were new. Known pairs keep their prices and quotes."""
        added = []
        for pair in pairs:
            if pair.spot_symbol not in self._by_symbol:
                self._by_symbol[pair.spot_symbol] = pair
                self._pairs.append(pair)
                added.append(pair.name)
        return added

    @property
    def pairs(self) -> list[Pair]:
        return list(self._pairs)

    def pair_of(self, buy_ccy: str | None, sell_ccy: str | None) -> Pair | None:
        if not (buy_ccy and sell_ccy):
            return None
        for pair in self._pairs:
            if pair.side_of(buy_ccy, sell_ccy) is not None:
                return pair
        return None

    def on_spot(self, symbol: str, price: Decimal, at_ms: int, topic: str) -> str | None:
        """Record a spot price; the pair's name, or None if the symbol is no Market Place pair.

        Kept per topic (``spot.trade``...) and as ``spot``, the latest of any topic. A tick older
        than the one held (a reconnect replays) does not replace it: a reference never goes back.
        """
        pair = self._by_symbol.get(symbol.replace("/", "").upper())
        if pair is None or price <= 0:
            return None
        refs = self._refs.setdefault(pair.name, {})
        ref = ReferencePrice(price, at_ms, f"spot.{topic}")
        for key in (f"spot.{topic}", "spot"):
            held = refs.get(key)
            if held is None or held.at_ms <= at_ms:
                refs[key] = ref
        return pair.name

    def on_public_quote(self, quote: Quote) -> str | None:
        pair = self.pair_of(quote.buy_ccy, quote.sell_ccy)
        if pair is None:
            return None
        self._quotes.setdefault(pair.name, deque(maxlen=self._keep)).append(quote)
        return pair.name

    def context(self, pair: str) -> MarketContext:
        return MarketContext(dict(self._refs.get(pair, {})), tuple(self._quotes.get(pair, ())))
