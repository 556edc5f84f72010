"""Shared pieces of the fault suite: the report row, the referees' measurements, and a WebSocket
proxy that slips extra frames into the daemon's streams.

The referee is the simulator's ground truth (what reached the venue) and the journal as read
from disk, never what the daemon believes.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
from aiohttp import web

from rfqbot.sim import Simulator
from tests.integration.helpers import SIM_ACCOUNT, JournalView


@dataclass
class ReportRow:
    """One line of ``make faults``: did the daemon recover, how fast, what was lost or doubled."""

    scenario: str
    recovered: bool = False
    recover_s: float | None = None
    facts_lost: int = 0
    duplicate_accepts: int = 0
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.recover_s is not None:
            out["recover_s"] = round(self.recover_s, 2)
        return out


# --- referees ---------------------------------------------------------------------------------

def own_rfqs(sim: Simulator) -> list[str]:
    return [e["rfq_id"] for e in sim.truth("rfq_created") if e["owner"] == SIM_ACCOUNT]


def duplicate_accepts(sim: Simulator) -> int:
    """Accept requests that reached the venue for an RFQ that had already been taken once, plus
    any second take (the venue filling one RFQ twice). Zero is the only acceptable answer."""
    events = sorted(sim.truth("accept_received") + sim.truth("accept_result") + sim.truth("accept_fault"),
                    key=lambda e: e["seq"])
    taken: set[str] = set()
    doubled = 0
    for event in events:
        rfq_id = event.get("rfq_id")
        if event["event"] == "accept_received" and event.get("action") == "accept" and rfq_id in taken:
            doubled += 1
        elif event["event"] in ("accept_result", "accept_fault") and event.get("outcome") == "accepted":
            # accept_fault: answered 5xx, yet applied when the fault says so: the RFQ is taken
            if rfq_id in taken:
                doubled += 1
            taken.add(rfq_id)
    return doubled


def missing_transitions(sim: Simulator, journal: JournalView, rfq_ids: list[str] | None = None) -> int:
    """Venue status changes of own RFQs that the journal's transitions do not show (in order)."""
    missing = 0
    for rfq_id in rfq_ids if rfq_ids is not None else own_rfqs(sim):
        venue = [e["to"] for e in sim.truth("status_change") if e["rfq_id"] == rfq_id]
        seen = iter(journal.transitions(rfq_id))
        for status in venue:
            if status not in seen:  # consumes the iterator: an in-order subsequence match
                missing += 1
    return missing


def chain_rows(journal: JournalView) -> dict[int, str]:
    """seq -> hash of every committed row (what must never disappear or change)."""
    return {r["seq"]: r["hash"] for r in journal.query("SELECT seq, hash FROM events")}


def rows_lost(before: dict[int, str], journal: JournalView) -> int:
    after = chain_rows(journal)
    return sum(1 for seq, digest in before.items() if after.get(seq) != digest)


# --- a frame-injecting WebSocket proxy --------------------------------------------------------

class WsProxy:
    """Plain-ws proxy in front of the simulator's wss streams: the daemon's ``venue.ws_url``
    points here, every frame is relayed both ways, and ``inject(stream, frames)`` writes extra
    frames to the daemon's live connections of that stream, in order, between the real ones.

    Runs its own asyncio loop on a thread; ``stop()`` closes every connection and joins it.
    """

    def __init__(self, sim: Simulator) -> None:
        self._upstream = sim.ws_url.rstrip("/")
        self._ssl = ssl.create_default_context(cafile=sim.ca_file) if sim.ca_file else None
        self._loop = asyncio.new_event_loop()
        self._clients: dict[str, list[web.WebSocketResponse]] = {"public": [], "private": []}
        self._thread = threading.Thread(target=self._loop.run_forever, name="ws-proxy", daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> "WsProxy":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        stream = "public" if request.path.startswith("/quote/") else "private"
        assert self._session is not None
        try:
            upstream = await self._session.ws_connect(self._upstream + request.path_qs, ssl=self._ssl,
                                                      autoping=False, max_msg_size=0)
        except aiohttp.WSServerHandshakeError as exc:
            return web.Response(status=exc.status, text="upstream refused")
        client = web.WebSocketResponse(autoping=False, max_msg_size=0)
        await client.prepare(request)
        self._clients[stream].append(client)
        down = asyncio.ensure_future(self._pump(upstream, client))
        try:
            await self._pump(client, upstream)
        finally:
            self._clients[stream].remove(client)
            down.cancel()
            await upstream.close()
            await client.close()
        return client

    @staticmethod
    async def _pump(src: Any, dst: Any) -> None:
        async for msg in src:
            if msg.type == aiohttp.WSMsgType.TEXT:
                await dst.send_str(msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                await dst.send_bytes(msg.data)
            elif msg.type == aiohttp.WSMsgType.PING:
                await dst.ping(msg.data)
            elif msg.type == aiohttp.WSMsgType.PONG:
                await dst.pong(msg.data)
            else:
                break

    def connections(self, stream: str) -> int:
        return len(self._clients[stream])

    def inject(self, stream: str, frames: list[str | bytes]) -> int:
        """Write ``frames`` to every live connection of ``stream``; returns connections reached."""
        async def send() -> int:
            reached = 0
            for client in list(self._clients[stream]):
                for frame in frames:
                    if isinstance(frame, bytes):
                        await client.send_bytes(frame)
                    else:
                        await client.send_str(frame)
                reached += 1
            return reached
        return asyncio.run_coroutine_threadsafe(send(), self._loop).result(30)

    def stop(self) -> None:
        async def close() -> None:
            for clients in self._clients.values():
                for client in list(clients):
                    await client.close()
            if self._runner is not None:
                await self._runner.cleanup()
            if self._session is not None:
                await self._session.close()
        try:
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()
