"""StreamConnection against a small scriptable aiohttp WebSocket server on 127.0.0.1.

The server is not the simulator: it only records what the client did (subscriptions, pings,
pongs, how many connections were open at once) and lets a test push frames, close
connections or go silent. Timings are sub-second so the whole file runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from decimal import Decimal
from typing import Any, Callable

import pytest
from aiohttp import WSMsgType, web

from rfqbot.backoff import Backoff
from rfqbot.events import Heartbeat, Note, RejectedFrame, StreamStatus
from rfqbot.streams.connection import SessionEnd, StreamConnection, key_hint, public_subscriptions


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, step: float = 0.01) -> bool:
    """Poll ``predicate`` until true or ``timeout``; bounded, returns the last verdict."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


class FakeWsServer:
    def __init__(self, ssl_context: Any = None) -> None:
        self.ssl_context = ssl_context  # wss:// when given
        self.answer_pings = True     # reply {"pong": v} to client {"ping": v}
        self.silent = False          # swallow everything: TCP open, nothing sent
        self.reject_paths: set[str] = set()  # answer these paths with HTTP 401 (dead listen key)
        self.received: list[tuple[int, str, Any]] = []  # (connection id, path, parsed message)
        self.connections_total = 0
        self.live = 0
        self.max_live = 0
        self._sockets: dict[int, web.WebSocketResponse] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-ws-server", daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> "FakeWsServer":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(5)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handler)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        for ws in list(self._sockets.values()):
            await ws.close()
        assert self._runner is not None
        await self._runner.cleanup()

    def url(self, path: str = "/quote/ws/v1") -> str:
        scheme = "wss" if self.ssl_context else "ws"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    # --- what the test thread can do -------------------------------------------------------

    def messages(self, kind: str | None = None) -> list[Any]:
        with self._lock:
            msgs = [m for _, _, m in self.received]
        if kind is None:
            return msgs
        return [m for m in msgs if isinstance(m, dict) and kind in m]

    def connection_paths(self) -> list[str]:
        """The path of each connection, in connection order."""
        with self._lock:
            return [p for _, p, m in self.received if m == {"_connected": True}]

    def send_all(self, text: str) -> None:
        async def go() -> None:
            for ws in list(self._sockets.values()):
                await ws.send_str(text)
        asyncio.run_coroutine_threadsafe(go(), self._loop).result(5)

    def send_all_raw_text(self, payload: bytes) -> None:
        """A TEXT frame with these exact bytes (send_str cannot make invalid UTF-8)."""
        async def go() -> None:
            for ws in list(self._sockets.values()):
                await ws.send_frame(payload, WSMsgType.TEXT)
        asyncio.run_coroutine_threadsafe(go(), self._loop).result(5)

    def close_all(self) -> None:
        async def go() -> None:
            for ws in list(self._sockets.values()):
                await ws.close()
        asyncio.run_coroutine_threadsafe(go(), self._loop).result(5)

    # --- the handler -----------------------------------------------------------------------

    async def _handler(self, request: web.Request) -> web.StreamResponse:
        if request.path in self.reject_paths:
            return web.Response(status=401, text="listen key does not exist")
        ws = web.WebSocketResponse(autoping=True, max_msg_size=4 << 20)
        await ws.prepare(request)
        with self._lock:
            self.connections_total += 1
            cid = self.connections_total
            self.live += 1
            self.max_live = max(self.max_live, self.live)
            self._sockets[cid] = ws
            self.received.append((cid, request.path, {"_connected": True}))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    parsed = json.loads(msg.data)
                except ValueError:
                    parsed = msg.data
                with self._lock:
                    self.received.append((cid, request.path, parsed))
                if self.silent:
                    continue
                if self.answer_pings and isinstance(parsed, dict) and "ping" in parsed:
                    await ws.send_str(json.dumps({"pong": parsed["ping"]}))
        finally:
            with self._lock:
                self.live -= 1
                self._sockets.pop(cid, None)
        return ws


# --- client side helpers ---------------------------------------------------------------------

def fake_decode(stream: str, text: str | bytes, received_ms: int) -> list[Any]:
    """Stands in for rfqbot.streams.wire.decode_frame: heartbeats as Heartbeat, the rest as Note."""
    if isinstance(text, bytes):
        return [RejectedFrame(received_ms, stream, "binary frame", repr(text[:40]))]
    try:
        obj = json.loads(text, parse_float=Decimal)
    except ValueError:
        return [RejectedFrame(received_ms, stream, "not JSON", text)]
    if isinstance(obj, dict) and "ping" in obj:
        return [Heartbeat(received_ms, stream, "ping", int(obj["ping"]), text)]
    if isinstance(obj, dict) and "pong" in obj:
        return [Heartbeat(received_ms, stream, "pong", int(obj["pong"]), text)]
    if isinstance(obj, dict) and obj.get("boom"):
        raise RuntimeError("decoder bug")
    return [Note(received_ms, "frame", {"obj": obj})]


class Sink:
    """The engine's queue, as far as a stream can tell."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, kind: type) -> list[Any]:
        with self._lock:
            return [e for e in self.events if isinstance(e, kind)]

    def states(self) -> list[tuple[str, int]]:
        return [(e.state, e.session) for e in self.of(StreamStatus)]


def make_stream(url: str, sink: Sink, **kw: Any) -> StreamConnection:
    defaults: dict[str, Any] = dict(
        post=sink, decode=fake_decode, stale_after_s=2.0, connect_timeout_s=2.0,
        close_timeout_s=0.2, backoff=Backoff(base_s=0.02, cap_s=0.1),
    )
    defaults.update(kw)
    name = defaults.pop("name", "public")
    return StreamConnection(name, url, **defaults)


@pytest.fixture
def server():
    with FakeWsServer() as srv:
        yield srv


@pytest.fixture
def streams():
    """Every stream built in a test is stopped at the end, even when the test fails."""
    made: list[StreamConnection] = []
    yield made
    for s in made:
        s.stop(2.0)
    leaked = [t.name for t in threading.enumerate() if t.name.startswith("rfqbot-stream-")]
    assert not leaked, f"stream threads left running: {leaked}"


# --- tests ------------------------------------------------------------------------------------

def test_public_stream_subscribes_and_pings(server, streams):
    sink = Sink()
    subs = public_subscriptions(("rfqs", "quotes"), ("BTCUSDT",))
    s = make_stream(server.url(), sink, subscribe=subs, client_ping_interval_s=0.05, stale_after_s=0.5)
    streams.append(s)
    assert s.start() is True
    assert wait_until(lambda: len(server.messages("ping")) >= 3)
    sent = server.messages()
    assert {"event": "SUBSCRIBE", "topic": "rfqs"} in sent
    assert {"event": "SUBSCRIBE", "topic": "quotes"} in sent
    assert {"symbol": "BTCUSDT", "topic": "realtimes", "event": "sub", "params": {"binary": False}} in sent
    # subscriptions go out before the first ping
    first_ping = next(i for i, m in enumerate(sent) if isinstance(m, dict) and "ping" in m)
    assert all("event" in m for m in sent[1:first_ping])
    assert all(isinstance(m["ping"], int) for m in server.messages("ping"))
    assert ("subscribed", 1) in sink.states()
    assert s.state == "subscribed" and s.session == 1
    assert not sink.of(Note), "pongs are consumed by the stream, not posted to the engine"


def test_pongs_keep_the_public_stream_alive(server, streams):
    sink = Sink()
    s = make_stream(server.url(), sink, client_ping_interval_s=0.05, stale_after_s=0.3)
    streams.append(s)
    s.start()
    time.sleep(1.0)  # > 3 stale periods: every one bridged only by pongs
    assert server.connections_total == 1
    assert not [st for st in sink.of(StreamStatus) if st.state == "stale"]
    assert s.last_frame_ms is not None


def test_missing_pongs_make_the_public_stream_stale(server, streams):
    """Traffic without pongs is not enough: the venue stopped answering our heartbeat."""
    server.answer_pings = False
    sink = Sink()
    s = make_stream(server.url(), sink, client_ping_interval_s=0.05, stale_after_s=0.3)
    streams.append(s)
    s.start()
    stop = threading.Event()

    def chatter() -> None:
        while not stop.wait(0.05):
            server.send_all(json.dumps({"topic": "rfqs", "data": []}))

    t = threading.Thread(target=chatter)
    t.start()
    try:
        assert wait_until(lambda: any(st.state == "stale" for st in sink.of(StreamStatus)), 3.0)
    finally:
        stop.set()
        t.join(2)
    stale = next(st for st in sink.of(StreamStatus) if st.state == "stale")
    assert "no pong" in stale.detail


def test_private_stream_answers_server_pings_with_same_value(server, streams):
    sink = Sink()
    s = make_stream(server.url("/api/v1/ws/KEY123456789"), sink, name="private",
                    answer_server_pings=True, stale_after_s=2.0)
    streams.append(s)
    s.start()
    assert wait_until(lambda: server.live == 1 and s.state == "subscribed")
    assert server.messages() == [{"_connected": True}], "the private stream sends no subscriptions"
    server.send_all(json.dumps({"ping": 1748504490208, "channelId": "02ac86"}))
    assert wait_until(lambda: {"pong": 1748504490208} in server.messages())
    server.send_all(json.dumps({"ping": 1748504490999, "channelId": "02ac86"}))
    assert wait_until(lambda: {"pong": 1748504490999} in server.messages())
    assert not server.messages("ping"), "the private stream never pings on its own"
    assert not sink.of(Note)


def test_server_close_reconnects_and_resubscribes(server, streams):
    sink = Sink()
    subs = public_subscriptions(("rfqs",))
    s = make_stream(server.url(), sink, subscribe=subs, client_ping_interval_s=0.1)
    streams.append(s)
    s.start()
    assert wait_until(lambda: s.state == "subscribed")
    server.close_all()
    assert wait_until(lambda: ("subscribed", 2) in sink.states())
    states = [st for st, _ in sink.states()]
    assert states[:3] == ["connecting", "connected", "subscribed"]
    i = states.index("closed")
    assert states[i:i + 5] == ["closed", "backoff", "connecting", "connected", "subscribed"]
    # the server reads the resubscription asynchronously: wait for it rather than race it
    assert wait_until(lambda: server.messages().count({"event": "SUBSCRIBE", "topic": "rfqs"}) == 2)
    assert server.connections_total == 2
    assert server.max_live == 1


def test_backoff_grows_while_failing_and_resets_after_a_good_session(server, streams):
    sink = Sink()
    s = make_stream(server.url(), sink, client_ping_interval_s=0.05, stale_after_s=0.3,
                    backoff=Backoff(base_s=0.01, cap_s=0.05))
    streams.append(s)
    server.reject_paths.add("/quote/ws/v1")
    s.start()
    assert wait_until(lambda: s._backoff.attempt >= 3)  # refused again and again: growing
    server.reject_paths.clear()
    assert wait_until(lambda: s.state == "subscribed")
    session = s.session
    time.sleep(0.5)  # pongs flow for longer than stale_after_s: a good session
    server.close_all()
    assert wait_until(lambda: ("backoff", session) in sink.states())
    assert s._backoff.attempt == 1, "the delay after a good session starts from the base again"


def test_silent_server_is_detected_stale_and_replaced(server, streams):
    server.silent = True
    sink = Sink()
    ends: list[SessionEnd] = []
    s = make_stream(server.url(), sink, client_ping_interval_s=0.05, stale_after_s=0.25,
                    on_stale=ends.append)
    streams.append(s)
    s.start()
    assert wait_until(lambda: server.connections_total >= 2, 3.0)
    stale = [st for st in sink.of(StreamStatus) if st.state == "stale"]
    assert stale and stale[0].session == 1
    assert ends[0].reason == "stale" and ends[0].connected_ms is not None
    assert ("connecting", 2) in sink.states()


def test_move_to_switches_url_with_one_connection_at_a_time(server, streams):
    sink = Sink()
    s = make_stream(server.url("/api/v1/ws/OLDKEY000001"), sink, name="private",
                    answer_server_pings=True)
    streams.append(s)
    s.start()
    assert wait_until(lambda: server.live == 1)
    s.move_to(server.url("/api/v1/ws/NEWKEY000002"))
    assert wait_until(lambda: server.connection_paths()[-1:] == ["/api/v1/ws/NEWKEY000002"])
    assert wait_until(lambda: s.state == "subscribed")
    assert server.connection_paths() == ["/api/v1/ws/OLDKEY000001", "/api/v1/ws/NEWKEY000002"]
    assert server.max_live == 1
    assert not [st for st in sink.of(StreamStatus) if st.state == "backoff"], "a move is not a failure"
    for st in sink.of(StreamStatus):
        assert "OLDKEY000001" not in st.detail and "NEWKEY000002" not in st.detail


def test_move_to_before_start_sets_the_url(server, streams):
    sink = Sink()
    s = make_stream(server.url("/api/v1/ws/placeholder"), sink, name="private")
    streams.append(s)
    s.move_to(server.url("/api/v1/ws/REALKEY00001"))
    s.start()
    assert wait_until(lambda: server.connection_paths() == ["/api/v1/ws/REALKEY00001"])


def test_rejected_handshake_reports_without_leaking_the_key(server, streams):
    server.reject_paths.add("/api/v1/ws/DEADKEY99999")
    sink = Sink()
    ends: list[SessionEnd] = []
    s = make_stream(server.url("/api/v1/ws/DEADKEY99999"), sink, name="private",
                    answer_server_pings=True, on_stale=ends.append)
    streams.append(s)
    s.start()
    assert wait_until(lambda: len(ends) >= 2)
    assert ends[0].reason == "rejected" and ends[0].connected_ms is None and ends[0].frames == 0
    assert "401" in ends[0].detail
    for st in sink.of(StreamStatus):
        assert "DEADKEY99999" not in st.detail
    connecting = next(st for st in sink.of(StreamStatus) if st.state == "connecting")
    assert connecting.detail.endswith("/api/v1/ws/" + key_hint("DEADKEY99999"))
    assert server.connections_total == 0


def test_bad_and_oversized_frames_do_not_kill_the_loop(server, streams):
    sink = Sink()
    s = make_stream(server.url(), sink)
    streams.append(s)
    s.start()
    assert wait_until(lambda: s.state == "subscribed")
    server.send_all("this is not json")
    server.send_all("x" * ((1 << 20) + 10))
    server.send_all(json.dumps({"boom": True}))
    server.send_all(json.dumps({"topic": "rfqs", "data": [1]}))
    assert wait_until(lambda: len(sink.of(Note)) == 1)
    rejected = sink.of(RejectedFrame)
    assert [r.reason for r in rejected][0] == "not JSON"
    assert "exceeds" in rejected[1].reason and len(rejected[1].raw) <= 512
    assert "decoder error" in rejected[2].reason
    assert sink.of(Note)[0].detail == {"obj": {"topic": "rfqs", "data": [1]}}
    assert server.connections_total == 1


def test_invalid_utf8_text_frame_is_rejected_and_the_session_goes_on(server, streams):
    # websocket-client's own (pure Python) check is off; the stream checks with bytes.decode.
    # A bad frame is journaled as rejected input and the frames after it still arrive.
    sink = Sink()
    s = make_stream(server.url(), sink)
    streams.append(s)
    s.start()
    assert wait_until(lambda: s.state == "subscribed")
    server.send_all_raw_text(b'{"topic":"rfqs","data":"\xff\xfe"}')
    server.send_all(json.dumps({"topic": "rfqs", "data": "caf\u00e9"}))
    assert wait_until(lambda: len(sink.of(Note)) == 1)
    [rejected] = sink.of(RejectedFrame)
    assert rejected.reason == "text frame is not valid UTF-8 (byte 24 of 28)"
    assert rejected.raw.startswith('{"topic":"rfqs","data":"')
    assert sink.of(Note)[0].detail == {"obj": {"topic": "rfqs", "data": "caf\u00e9"}}
    assert server.connections_total == 1


def test_start_twice_runs_one_loop_and_stop_joins(server, streams):
    sink = Sink()
    s = make_stream(server.url(), sink, client_ping_interval_s=0.1)
    streams.append(s)
    assert s.start() is True
    assert s.start() is False
    assert wait_until(lambda: s.state == "subscribed")
    assert len([t for t in threading.enumerate() if t.name == "rfqbot-stream-public"]) == 1
    assert s.stop(2.0) is True
    assert not s.is_alive()
    assert sink.states()[-1] == ("stopped", 1)
    assert wait_until(lambda: server.live == 0)
    with pytest.raises(RuntimeError):
        s.start()


def test_stop_during_backoff_is_prompt(streams):
    """Nothing listens on the port: the stream sits in backoff; stop must not wait it out."""
    sink = Sink()
    with socket.socket() as probe:  # an ephemeral port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    s = make_stream(f"ws://127.0.0.1:{port}/quote/ws/v1", sink, backoff=Backoff(base_s=30, cap_s=30))
    streams.append(s)
    s.start()
    assert wait_until(lambda: s.state == "backoff")
    assert s.stop(3.0) is True  # well inside the 30 s backoff
    closed = [st for st in sink.of(StreamStatus) if st.state == "closed"]
    assert closed and closed[0].detail.startswith("error:")


def test_default_decoder_is_wire_decode_frame(server, streams):
    """With the production decoder: the documented ping is answered, the push is posted."""
    from rfqbot.events import RfqUpdate

    # the venue's documented frames (docs/frames/ws-private-*.json), inlined
    ping = {"ping": 1748504490208, "channelId": "02ac86fffe5fdf52-00000001-00266eb0-74a37ad40fb20d81"}
    update = {"event": "update", "topic": "rfqUpdates", "data": {
        "rfqId": "RFQ_123", "rfqClOrderId": "RFQClOrder_123", "buyCcy": "BTC", "sellCcy": "USDT",
        "buyAmount": "", "sellAmount": "2", "rfqMode": "real-time", "quoteId": "quote_123",
        "price": 120001, "quoteMode": "real-time", "status": "accepted", "statusInt": "2",
        "isLPReject": False, "expiryTime": 1717410000}}
    sink = Sink()
    s = StreamConnection("private", server.url("/api/v1/ws/KEYKEYKEYKEY"), post=sink,
                         answer_server_pings=True, stale_after_s=2.0, close_timeout_s=0.2)
    streams.append(s)
    s.start()
    assert wait_until(lambda: s.state == "subscribed")
    server.send_all(json.dumps(ping))
    server.send_all(json.dumps(update))
    assert wait_until(lambda: {"pong": ping["ping"]} in server.messages())
    assert wait_until(lambda: len(sink.of(RfqUpdate)) == 1)
    assert sink.of(RfqUpdate)[0].rfq.rfq_id == "RFQ_123"
    assert not sink.of(RejectedFrame)


def test_builders_follow_config():
    from rfqbot.config.schema import Settings
    from rfqbot.streams.setup import build_private_stream, build_public_stream

    settings = Settings.model_validate({"streams": {"spot_symbols": ["BTCUSDT"], "ping_interval_s": 7,
                                                    "public_stale_after_s": 21, "private_stale_after_s": 61,
                                                    "reconnect_max_backoff_s": 12}})
    pub = build_public_stream(settings, post=Sink())
    assert pub.url == settings.profile().public_stream_url
    assert pub._subscribe == public_subscriptions(("rfqs", "quotes"), ("BTCUSDT",))
    assert (pub._ping_interval_s, pub._stale_after_s, pub._backoff.cap_s) == (7, 21, 12)
    priv = build_private_stream(settings, post=Sink())
    assert (priv._ping_interval_s, priv._answer_pings, priv._stale_after_s) == (None, True, 61)
    assert priv._subscribe == []
    assert not pub.is_alive() and not priv.is_alive()


def test_tls_verifies_against_the_given_ca_file(tmp_path, streams):
    import ssl

    import trustme

    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with FakeWsServer(ssl_context=server_ctx) as tls_server:
        trusted_sink, untrusted_sink = Sink(), Sink()
        trusted = make_stream(tls_server.url(), trusted_sink, ca_file=str(ca_file),
                              subscribe=public_subscriptions(("rfqs",)))
        untrusted = make_stream(tls_server.url(), untrusted_sink)  # system CAs only
        streams.extend([trusted, untrusted])
        trusted.start()
        untrusted.start()
        assert wait_until(lambda: {"event": "SUBSCRIBE", "topic": "rfqs"} in tls_server.messages())
        assert wait_until(lambda: any(st.state == "closed" for st in untrusted_sink.of(StreamStatus)))
        closed = next(st for st in untrusted_sink.of(StreamStatus) if st.state == "closed")
        assert "CERTIFICATE_VERIFY_FAILED" in closed.detail or "certificate" in closed.detail.lower()
        assert untrusted.state != "subscribed"
        trusted.stop(2.0)
        untrusted.stop(2.0)


def test_spot_topics_follow_the_strategies_and_are_checked():
    from rfqbot.config.schema import load_config_text
    from rfqbot.errors import ConfigError
    from rfqbot.streams.setup import build_public_stream

    def cfg(symbols, *steps):
        body = "".join(f"    - use: reference_band\n      max_bps: 5\n      source: {s}\n" for s in steps)
        return load_config_text(f"streams:\n  spot_symbols: {symbols}\nstrategies:\n  BTC/USDT:\n{body}"
                                "    - use: price_limit\n      limit_price: 1\n", file="c.yaml")

    pub = build_public_stream(cfg("[BTCUSDT]", "spot.trade", "spot.depth"), post=Sink())
    assert sorted((s["symbol"], s["topic"]) for s in pub._subscribe if "symbol" in s) == [
        ("BTCUSDT", "depth"), ("BTCUSDT", "trade")]
    pub = build_public_stream(cfg("[BTCUSDT]", "spot"), post=Sink())
    assert [s["topic"] for s in pub._subscribe if "symbol" in s] == ["realtimes"]
    assert cfg("[]", "public_quotes").streams.spot_symbols == []  # no spot source: nothing to check
    with pytest.raises(ConfigError) as err:
        cfg("[ETHUSDT]", "spot.trade")
    assert err.value.key == "streams.spot_symbols" and "add BTCUSDT" in str(err.value)
    assert "strategies.BTC/USDT[0]" in str(err.value) and err.value.line == 2
