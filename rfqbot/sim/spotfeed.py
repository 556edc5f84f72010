"""Spot reference data on the public stream, following the same walk the LPs quote around.

Reference-price strategies compare a quote with the spot market; the simulator's spot frames
(``realtimes``, ``trade``, ``depth``) are shaped like the venue's public spot stream and move with
``ReferencePrices``, so such a strategy sees a consistent market.
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

from rfqbot.sim import wirejson
from rfqbot.sim.clock import SimClock
from rfqbot.sim.lps import ReferencePrices
from rfqbot.sim.streams import StreamHub
from rfqbot.sim.wirejson import dec_text


class SpotFeed:
    """One tick: step the walk, then push every subscribed spot topic once."""

    def __init__(self, refs: ReferencePrices, hub: StreamHub, clock: SimClock,
                 rng: random.Random) -> None:
        self.refs = refs
        self.hub = hub
        self.clock = clock
        self._rng = rng
        self._trade_id = 0
        self.stats: dict[str, dict[str, Any]] = {}
        for pair in refs.pairs:
            price = refs.of(pair)
            self.stats[pair.symbol] = {"open": price, "high": price, "low": price,
                                       "volume": Decimal(0), "quote_volume": Decimal(0)}

    def tick(self) -> None:
        self.refs.step()
        now = self.clock.now_ms()
        for pair in self.refs.pairs:
            price = self.refs.of(pair)
            stats = self.stats[pair.symbol]
            qty = (Decimal(self._rng.randint(1, 500)) * Decimal(pair.base_precision) * 10)
            stats["high"] = max(stats["high"], price)
            stats["low"] = min(stats["low"], price)
            stats["volume"] += qty
            stats["quote_volume"] = (stats["quote_volume"] + qty * price).quantize(
                Decimal(pair.quote_precision))
            self._trade_id += 1
            for conn in list(self.hub.public_conns):
                if "public" in self.hub.faults.silent:
                    continue
                for topic in ("realtimes", "trade", "depth"):
                    if (pair.symbol, topic) in conn.spot_subs:
                        first = (pair.symbol, topic) in conn.spot_first
                        conn.spot_first.discard((pair.symbol, topic))
                        frame = spot_frame(pair.symbol, topic, price, stats, now, first,
                                           self._trade_id, qty, Decimal(pair.quote_precision))
                        conn.send(wirejson.dumps(frame))


def spot_frame(symbol: str, topic: str, price: Decimal, stats: dict[str, Any], now_ms: int,
                first: bool, trade_id: int, qty: Decimal, precision: Decimal) -> dict[str, Any]:
    """One frame shaped like the public spot stream, around the reference price."""
    if topic == "realtimes":
        data: dict[str, Any] = {
            "t": now_ms, "s": symbol, "c": dec_text(price), "h": dec_text(stats["high"]),
            "l": dec_text(stats["low"]), "o": dec_text(stats["open"]),
            "v": dec_text(stats["volume"]), "qv": dec_text(stats["quote_volume"]),
            "m": dec_text(((price - stats["open"]) / stats["open"]).quantize(Decimal("0.0001")))}
    elif topic == "trade":
        data = {"v": str(trade_id), "t": now_ms, "p": dec_text(price), "q": dec_text(qty),
                "m": trade_id % 2 == 0}
    else:
        bids = [[dec_text(price - precision * (i + 1)), dec_text(qty * (i + 1))] for i in range(5)]
        asks = [[dec_text(price + precision * (i + 1)), dec_text(qty * (i + 1))] for i in range(5)]
        data = {"t": now_ms, "s": symbol, "b": bids, "a": asks}
    return {"symbol": symbol, "symbolName": symbol, "topic": topic,
            "params": {"realtimeInterval": "24h", "binary": "false"} if topic == "realtimes"
            else {"binary": "false"}, "data": [data], "f": first, "sendTime": now_ms}
