"""Small pieces shared by a stream connection, the listen-key keeper and the stream wiring.

Split from ``connection.py`` (one connection's life) so that file stays readable; ``connection``
re-exports every name here, so ``from rfqbot.streams.connection import SessionEnd`` keeps working.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from rfqbot.events import Event, StreamName

Decode = Callable[[StreamName, "str | bytes", int], list[Event]]


@dataclass(frozen=True, slots=True)
class SessionEnd:
    """How one connection attempt ended; given to ``on_stale`` for every abnormal end.

    ``reason``: ``stale`` (no frame or pong in time), ``closed`` (the server closed),
    ``error`` (network/TLS/protocol failure), ``rejected`` (the handshake got an HTTP error
    status: for the private stream usually a dead listen key). ``connected_ms`` is None when
    the connection never opened. ``frames`` counts frames received in this session, so a
    caller can tell "opened but nothing ever arrived" from a session that worked for a while.
    """

    stream: StreamName
    session: int
    url: str
    reason: str
    connected_ms: int | None
    ended_ms: int
    frames: int
    detail: str = ""


def key_hint(key: str | None) -> str:
    """A fingerprint to tell listen keys apart in logs and the journal without revealing them."""
    if not key:
        return ""
    return "k:" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]


def public_subscriptions(topics: Sequence[str] = ("rfqs", "quotes"),
                         spot_symbols: Sequence[str] = (),
                         spot_topics: Sequence[str] = ("realtimes",)) -> list[dict[str, Any]]:
    """Subscribe messages for the public stream (Market Place topics, then spot topics per symbol).

    The two message shapes differ on purpose: the venue documents ``{"event":"SUBSCRIBE"}``
    for Market Place topics and the spot shape with ``"event":"sub"`` for ``realtimes``,
    ``trade`` and ``depth``.
    """
    subs: list[dict[str, Any]] = [{"event": "SUBSCRIBE", "topic": t} for t in topics]
    subs += [{"symbol": s, "topic": topic, "event": "sub", "params": {"binary": False}}
             for s in spot_symbols for topic in spot_topics]
    return subs


__all__ = ["Decode", "SessionEnd", "key_hint", "public_subscriptions"]
