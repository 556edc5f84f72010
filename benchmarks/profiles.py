"""cProfile of the accept's REST path against the benchmark venue, kept with the results.

Tick-to-accept crosses four threads (stream, engine, REST worker, venue), which cProfile cannot
follow in one go; so each leg is profiled on its own: the decision path and the engine's
ingest in ``benchmarks.micro``, the REST leg here (``MarketPlace.accept_quote`` as the worker
calls it, the pacing window opened wide so the profile shows work, not waiting).
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from pathlib import Path
from typing import Any

from rfqbot.config.credentials import Credentials
from rfqbot.errors import VenueError
from rfqbot.venue.marketplace import MarketPlace
from rfqbot.venue.profiles import VenueProfile

from benchmarks.stats import latency_summary_ms


def profile_accept_path(venue: dict[str, Any], key: str, secret: str, calls: int, out: Path) -> dict[str, Any]:
    """``calls`` accepts of an unknown quote (the venue answers an error after checking the
    signature, the same transport work as a real accept); round-trip percentiles + profile."""
    market = MarketPlace(VenueProfile("benchmark", venue["rest_url"], venue["ws_url"], "X-HK-APIKEY",
                                      ca_file=venue["ca_file"]), Credentials(key, secret, source="benchmark"),
                         observer=lambda call: None)
    market.rest.gate = type(market.rest.gate)(market.rest.clock, query_per_s=10**6, order_per_s=10**6)

    def one() -> None:
        try:
            market.accept_quote("MP-BENCH-UNKNOWN", "MPQ-BENCH-UNKNOWN")
        except VenueError:
            pass

    try:
        for _ in range(20):
            one()
        round_trips = []
        for _ in range(calls):
            t0 = time.perf_counter_ns()
            one()
            round_trips.append(time.perf_counter_ns() - t0)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(calls):
            one()
        profiler.disable()
    finally:
        market.close()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(35)
    out.write_text(text.getvalue(), encoding="utf-8")
    return {"calls": calls, "round_trip": latency_summary_ms(round_trips)}
