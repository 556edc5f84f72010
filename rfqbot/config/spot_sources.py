"""Which spot topics the configured strategies read, and a config check that they will get data.

``reference_band`` with a spot source reads ``SpotTick`` events for its pair's spot symbol
(``BTC/USDT`` -> ``BTCUSDT``) from one topic (``spot.trade`` -> ``trade``) or any of them
(``spot``). Nothing arrives unless the public stream subscribes that topic for that symbol, and
before this check a missing subscription only showed as "no reference price" on every decision.
Kept free of heavy imports: the config loader calls ``check`` on every load.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from rfqbot.errors import ConfigError

# reference_band's spot sources -> the public-stream topic that feeds them ("spot": the latest
# of any topic; realtimes, the ticker, is the one that always moves).
TOPIC_OF_SOURCE = {"spot": "realtimes", "spot.realtimes": "realtimes", "spot.trade": "trade",
                   "spot.depth": "depth"}
DEFAULT_SPOT_TOPICS = ("realtimes",)


def spot_steps(chains: Any) -> Iterator[tuple[str, int, str]]:
    """``(pair, step index, source)`` of every step that reads a spot reference."""
    if chains is None:
        return
    for pair, steps in chains.describe().items():
        for index, step in enumerate(steps):
            source = step.get("source")
            if step.get("use") == "reference_band" and source in TOPIC_OF_SOURCE:
                yield pair, index, source


def spot_topics(chains: Any) -> list[str]:
    """The spot topics to subscribe for every ``streams.spot_symbols`` entry.

    The topics the strategies read; ``realtimes`` when none reads spot (the symbols were
    configured for a reason: the journal keeps their prices for replay and audits).
    """
    needed = sorted({TOPIC_OF_SOURCE[source] for _, _, source in spot_steps(chains)})
    return needed or list(DEFAULT_SPOT_TOPICS)


def check(settings: Any, *, file: str | None = None, lines: Mapping[str, int] | None = None) -> None:
    """ConfigError naming ``streams.spot_symbols`` when a spot-reading step's pair is not subscribed."""
    symbols = set(settings.streams.spot_symbols)
    line = (lines or {}).get("streams.spot_symbols") or (lines or {}).get("streams")
    for pair, index, source in spot_steps(getattr(settings, "chains", None)):
        step = f"strategies.{pair}[{index}]"
        if pair == "*":
            if not symbols:
                raise ConfigError(
                    f"{step} (reference_band, source {source}) needs spot prices, but no spot symbol is "
                    "subscribed: list the spot symbol of each pair it serves (BTC/USDT -> BTCUSDT)",
                    file=file, key="streams.spot_symbols", line=line)
            continue
        symbol = pair.replace("/", "")
        if symbol not in symbols:
            raise ConfigError(
                f"{step} (reference_band, source {source}) needs spot prices for {pair}: add {symbol} to "
                f"streams.spot_symbols (now {sorted(symbols) or 'empty'})",
                file=file, key="streams.spot_symbols", line=line)


__all__ = ["DEFAULT_SPOT_TOPICS", "TOPIC_OF_SOURCE", "check", "spot_steps", "spot_topics"]
