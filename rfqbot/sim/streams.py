"""WebSocket side of the venue: the public stream, the private stream and spot reference data.

Each connection has one writer task fed by a queue, so frames leave in the order the market
produced them and a slow client never blocks the market. Faults that act on frames (silence,
duplicates, out-of-order ``rfqUpdates``, junk frames) are applied here, at the last moment.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import structlog
from aiohttp import WSMsgType, web

from rfqbot.sim import wirejson
from rfqbot.sim.clock import SimClock
from rfqbot.sim.config import SimConfig
from rfqbot.sim.faults_state import FaultState
from rfqbot.sim.listenkeys import ListenKeys
from rfqbot.sim.truth import GroundTruth

log = structlog.get_logger(__name__)

MARKET_PLACE_TOPICS = ("rfqs", "quotes")
SPOT_TOPICS = ("realtimes", "trade", "depth")
_conn_ids = itertools.count(1)
MIN_TIMER_S = 0.005     # floor for scaled periodic timers, so huge time scales do not spin
CLOSE_TIMEOUT_S = 2.0   # how long a close waits for the client's close frame


class Connection:
    """One accepted WebSocket; ``send`` never blocks and never raises."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request, stream: str,
                 truth: GroundTruth, owner: str | None = None, key: str | None = None) -> None:
        self.id = next(_conn_ids)
        self.ws = ws
        self.request = request
        self.stream = stream
        self.truth = truth
        self.owner = owner
        self.key = key
        self.subs: set[str] = set()
        self.spot_subs: set[tuple[str, str]] = set()
        # Spot subscriptions still owed their first frame ("f": true). Kept per connection so
        # it is bounded by spot_subs and freed with the connection, tick loop running or not.
        self.spot_first: set[tuple[str, str]] = set()
        self.last_heard = time.monotonic()
        self._queue: asyncio.Queue[tuple[Any, dict[str, Any] | None]] = asyncio.Queue()
        self.writer = asyncio.ensure_future(self._write_loop())

    def send(self, payload: str | bytes, meta: dict[str, Any] | None = None) -> None:
        self._queue.put_nowait((payload, meta))

    async def _write_loop(self) -> None:
        while True:
            payload, meta = await self._queue.get()
            if payload is None or self.ws.closed:
                return
            # Stamped just BEFORE the write: a stamp taken after it could land after the client
            # had already read the frame (the GIL, the scheduler), making latencies look shorter.
            written_ns = time.perf_counter_ns()
            try:
                if isinstance(payload, bytes):
                    await self.ws.send_bytes(payload)
                else:
                    await self.ws.send_str(payload)
            except (ConnectionError, RuntimeError) as exc:
                log.info("sim.ws.send_failed", conn=self.id, error=str(exc))
                return
            if meta is not None:
                self.truth.record("push", stream=self.stream, conn=self.id,
                                  perf_ns=written_ns, **meta)

    async def close(self, abrupt: bool = False) -> None:
        self._queue.put_nowait((None, None))
        if abrupt:
            transport = self.request.transport
            if transport is not None:
                transport.abort()
        else:
            await self.ws.close(code=1001, message=b"closed by the venue")


class StreamHub:
    """Fan-out to every connection, with the frame-level faults applied."""

    def __init__(self, config: SimConfig, clock: SimClock, truth: GroundTruth,
                 faults: FaultState, keys: ListenKeys) -> None:
        self.config = config
        self.clock = clock
        self.truth = truth
        self.faults = faults
        self.keys = keys
        self.public_conns: set[Connection] = set()
        self.private_conns: set[Connection] = set()
        self._held_update: dict[str, tuple[str, dict[str, Any], Any]] = {}

    # ---------------------------------------------------------------- delivery with faults
    def _deliver(self, conn: Connection, text: str, meta: dict[str, Any] | None) -> None:
        if conn.stream in self.faults.silent:
            if meta is not None:
                self.truth.record("push_dropped", stream=conn.stream, conn=conn.id, **meta)
            return
        if conn.key and self.keys.is_muted(conn.key):
            return
        conn.send(text, meta)
        remaining = self.faults.duplicate.get(conn.stream, 0)
        if remaining > 0 and meta is not None:
            self.faults.duplicate[conn.stream] = remaining - 1
            conn.send(text, {**meta, "duplicate": True})

    def public(self, topic: str, frame: dict[str, Any], rfq_id: str) -> None:
        text = wirejson.dumps(frame)
        for conn in list(self.public_conns):
            if topic in conn.subs:
                self._deliver(conn, text, {"topic": topic, "rfq_id": rfq_id})

    def private(self, owner: str, topic: str, frame: dict[str, Any], rfq_id: str) -> None:
        if not any(conn.owner == owner for conn in self.private_conns):
            return      # nobody listening (background accounts, or the taker between streams)
        meta: dict[str, Any] = {"topic": topic, "rfq_id": rfq_id, "owner": owner}
        if topic == "bestQuote":
            meta["quote_ids"] = [row["quoteOrderId"] for row in frame["data"]]
        else:
            meta["status"] = frame["data"]["status"]
        text = wirejson.dumps(frame)
        if topic == "rfqUpdates" and self._reorder(owner, text, meta):
            return
        self._to_owner(owner, text, meta)

    def _to_owner(self, owner: str, text: str, meta: dict[str, Any]) -> None:
        for conn in list(self.private_conns):
            if conn.owner == owner:
                self._deliver(conn, text, meta)

    def _reorder(self, owner: str, text: str, meta: dict[str, Any]) -> bool:
        """Out-of-order fault: hold one rfqUpdates, send it after the next one."""
        held = self._held_update.pop(owner, None)
        if held is not None:
            held_text, held_meta, timer = held
            timer.cancel()
            self._to_owner(owner, text, meta)
            self._to_owner(owner, held_text, {**held_meta, "reordered": True})
            return True
        if self.faults.reorder_updates > 0:
            self.faults.reorder_updates -= 1
            timer = asyncio.get_running_loop().call_later(
                1.0, lambda: self._flush_held(owner))
            self._held_update[owner] = (text, meta, timer)
            return True
        return False

    def _flush_held(self, owner: str) -> None:
        held = self._held_update.pop(owner, None)
        if held is not None:
            self._to_owner(owner, held[0], {**held[1], "reordered": True})

    def inject(self, stream: str, payload: str | bytes, kind: str) -> int:
        conns = self.public_conns if stream == "public" else self.private_conns
        for conn in list(conns):
            conn.send(payload, {"topic": "fault", "kind": kind})
        return len(conns)

    # ---------------------------------------------------------------- public stream
    async def handle_public(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False, timeout=CLOSE_TIMEOUT_S)
        await ws.prepare(request)
        conn = Connection(ws, request, "public", self.truth)
        self.public_conns.add(conn)
        try:
            async for msg in ws:
                conn.last_heard = time.monotonic()
                if msg.type == WSMsgType.TEXT:
                    self._on_public_text(conn, msg.data)
                elif msg.type == WSMsgType.PING:
                    await self._protocol_pong(conn, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.public_conns.discard(conn)
            conn.send(None)  # type: ignore[arg-type]
        return ws

    def _on_public_text(self, conn: Connection, text: str) -> None:
        try:
            message = wirejson.loads(text)
        except ValueError:
            conn.send(wirejson.dumps({"code": "-100010", "msg": "Invalid JSON"}))
            return
        if not isinstance(message, dict):
            return
        if "ping" in message:
            if "public" not in self.faults.silent:
                conn.send(wirejson.dumps({"pong": self.clock.now_ms()}))
            return
        event, topic = message.get("event"), message.get("topic")
        if event in ("SUBSCRIBE", "UNSUBSCRIBE") and topic in MARKET_PLACE_TOPICS:
            (conn.subs.add if event == "SUBSCRIBE" else conn.subs.discard)(topic)
        elif event in ("sub", "cancel") and topic in SPOT_TOPICS:
            symbol = str(message.get("symbol", ""))
            if symbol not in {p.symbol for p in self.config.pairs}:
                conn.send(wirejson.dumps({"code": "-100010", "desc": "Invalid Symbols!"}))
            elif event == "sub":
                conn.spot_subs.add((symbol, topic))
                conn.spot_first.add((symbol, topic))
            else:
                conn.spot_subs.discard((symbol, topic))
                conn.spot_first.discard((symbol, topic))
        else:
            conn.send(wirejson.dumps({"code": "-100010", "msg": f"Unsupported message: {text}"}))

    # ---------------------------------------------------------------- private stream
    async def handle_private(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["listen_key"]
        owner = self.keys.owner_of(key)
        if owner is None:
            return web.json_response({"code": -1130, "msg": "Illegal parameter 'listenKey': "
                                      "unknown, expired or deleted listen key"}, status=400)
        ws = web.WebSocketResponse(autoping=False, timeout=CLOSE_TIMEOUT_S)
        await ws.prepare(request)
        conn = Connection(ws, request, "private", self.truth, owner=owner, key=key)
        self.private_conns.add(conn)
        self.truth.record("private_connected", conn=conn.id, owner=owner, key_tail=key[-6:])
        pinger = asyncio.ensure_future(self._ping_loop(conn))
        try:
            async for msg in ws:
                conn.last_heard = time.monotonic()
                if msg.type == WSMsgType.PING:
                    await self._protocol_pong(conn, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            pinger.cancel()
            self.private_conns.discard(conn)
            conn.send(None)  # type: ignore[arg-type]
        return ws

    async def _protocol_pong(self, conn: Connection, payload: bytes) -> None:
        """WebSocket-level pongs by hand: a silenced venue must not answer those either."""
        if conn.stream in self.faults.silent or (conn.key and self.keys.is_muted(conn.key)):
            return
        try:
            await conn.ws.pong(payload)
        except (ConnectionError, RuntimeError):
            return

    async def _ping_loop(self, conn: Connection) -> None:
        channel = f"sim-{conn.id:08x}-{conn.key[-8:] if conn.key else ''}"
        while not conn.ws.closed:
            await asyncio.sleep(max(MIN_TIMER_S,
                                    self.clock.real_s(self.config.private_ping_interval_s)))
            idle = time.monotonic() - conn.last_heard
            if idle > self.clock.real_s(self.config.idle_close_s):
                self.truth.record("private_idle_closed", conn=conn.id)
                await conn.close()
                return
            if "private" in self.faults.silent or (conn.key and self.keys.is_muted(conn.key)):
                continue
            conn.send(wirejson.dumps({"ping": self.clock.now_ms(), "channelId": channel}))

    async def close_for_key(self, key: str) -> None:
        for conn in [c for c in self.private_conns if c.key == key]:
            await conn.close()

    async def close_all(self, stream: str, abrupt: bool = False) -> int:
        conns = self.public_conns if stream == "public" else self.private_conns
        targets = list(conns)
        for conn in targets:
            await conn.close(abrupt=abrupt)
        return len(targets)
