"""Request authentication and rate limiting, as the venue's general rules describe them.

The signature is checked over the exact bytes received: the query string as sent (minus its
``signature`` parameter) immediately followed by the form body as sent (minus ``signature``).
Re-encoding parsed parameters would accept clients that sign something other than what they
send, which is exactly the bug the simulator must catch.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import deque
from urllib.parse import parse_qsl

from rfqbot.sim import venue_errors as err
from rfqbot.sim.clock import SimClock


def strip_signature(raw: str) -> tuple[str, str | None]:
    """Remove the ``signature=`` parameter from a raw parameter string; return (rest, sig)."""
    if not raw:
        return "", None
    kept, signature = [], None
    for part in raw.split("&"):
        if part.startswith("signature="):
            signature = part[len("signature="):]
        else:
            kept.append(part)
    return "&".join(kept), signature


def sign(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def parse_params(query: str, body: str) -> dict[str, str]:
    """Body parameters overlaid by query parameters (the general rules give the query priority)."""
    params = dict(parse_qsl(body, keep_blank_values=True))
    params.update(parse_qsl(query, keep_blank_values=True))
    params.pop("signature", None)
    return params


def verify(secret: str, raw_query: str, raw_body: str, params: dict[str, str],
           clock: SimClock, recv_window_default_ms: int) -> None:
    """Raise the documented error for a bad signature or a timestamp outside the window."""
    query, sig_q = strip_signature(raw_query)
    body, sig_b = strip_signature(raw_body)
    signature = sig_b or sig_q
    if not signature:
        raise err.missing("signature")
    expected = sign(secret, query + body)
    if not hmac.compare_digest(expected, signature.lower()):
        raise err.bad_signature()
    stamp = params.get("timestamp", "")
    if not (stamp.isascii() and stamp.isdigit()):
        raise err.missing("timestamp")
    window_text = params.get("recvWindow") or str(recv_window_default_ms)
    if not (window_text.isascii() and window_text.isdigit()):
        raise err.missing("recvWindow")
    server = clock.now_ms()
    timestamp = int(stamp)
    if not (timestamp < server + 1000 and server - timestamp <= int(window_text)):
        raise err.stale_timestamp()


class RateLimiter:
    """Per API key: N queries/s and M order-type calls/s, then 429, then 418 in the penalty.

    The one-second windows are real time (they describe request rates); the penalty minute is a
    venue duration and is scaled by ``time_scale``.
    """

    def __init__(self, query_per_s: int, order_per_s: int, penalty_s: float,
                 clock: SimClock) -> None:
        self.limits = {"query": query_per_s, "order": order_per_s}
        self.penalty_s = penalty_s
        self.clock = clock
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._penalty_until: dict[str, float] = {}

    def check(self, api_key: str, kind: str, count: bool = True) -> None:
        """Raise 418 inside a penalty; with ``count``, also 429 past the per-second limit."""
        now = time.monotonic()
        until = self._penalty_until.get(api_key)
        if until is not None:
            if now < until:
                raise err.banned()
            del self._penalty_until[api_key]
            self._hits = {k: v for k, v in self._hits.items() if k[0] != api_key}
        if not count:
            return
        hits = self._hits.setdefault((api_key, kind), deque())
        while hits and now - hits[0] >= 1.0:
            hits.popleft()
        if len(hits) >= self.limits[kind]:
            self._penalty_until[api_key] = now + self.clock.real_s(self.penalty_s)
            raise err.rate_limited()
        hits.append(now)

    def force_penalty(self, api_key: str) -> None:
        self._penalty_until[api_key] = time.monotonic() + self.clock.real_s(self.penalty_s)
