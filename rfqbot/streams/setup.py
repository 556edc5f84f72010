"""The two stream connections as the configuration asks for them (kept out of ``connection.py``,
which is about one connection's life, not about settings)."""

from __future__ import annotations

from typing import Any, Callable

from rfqbot.clock import Clock
from rfqbot.events import Event
from rfqbot.config.spot_sources import spot_topics
from rfqbot.streams.connection import Decode, SessionEnd, StreamConnection, public_subscriptions


def build_public_stream(settings: Any, *, post: Callable[[Event], None], decode: Decode | None = None,
                        clock: Clock | None = None) -> StreamConnection:
    """The public stream as ``streams.*`` and ``venue.*`` configure it.

    Spot symbols are subscribed on the topics the strategies read (``reference_band`` sources
    ``spot.trade``/``spot.depth``/``spot``), ``realtimes`` when none reads spot.
    """
    profile = settings.profile()
    cfg = settings.streams
    return StreamConnection(
        "public", profile.public_stream_url, post=post, decode=decode,
        subscribe=public_subscriptions(cfg.public_topics, cfg.spot_symbols,
                                       spot_topics(getattr(settings, "chains", None))),
        client_ping_interval_s=cfg.ping_interval_s, answer_server_pings=False,
        stale_after_s=cfg.public_stale_after_s, max_backoff_s=cfg.reconnect_max_backoff_s,
        ca_file=profile.ca_file, clock=clock, connect_timeout_s=max(profile.connect_timeout_s, 1.0))


def build_private_stream(settings: Any, *, post: Callable[[Event], None], decode: Decode | None = None,
                         clock: Clock | None = None,
                         on_stale: Callable[[SessionEnd], None] | None = None) -> StreamConnection:
    """The private stream, not yet on any key: ``ListenKeyKeeper.start`` moves it onto one."""
    profile = settings.profile()
    cfg = settings.streams
    return StreamConnection(
        "private", profile.private_stream_url("pending"), post=post, decode=decode,
        client_ping_interval_s=None, answer_server_pings=True,
        stale_after_s=cfg.private_stale_after_s, max_backoff_s=cfg.reconnect_max_backoff_s,
        ca_file=profile.ca_file, clock=clock, on_stale=on_stale,
        connect_timeout_s=max(profile.connect_timeout_s, 1.0))


__all__ = ["build_private_stream", "build_public_stream"]
