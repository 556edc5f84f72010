"""The Simulator: one aiohttp server (REST + both streams, one port) on its own loop thread.

Running on a private event loop in a background thread lets tests, the demo and benchmarks
embed the venue next to rfqbot in one process. Everything mutable lives on that loop;
``Simulator.call`` is the one door from other threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import random
import shutil
import ssl
import string
import tempfile
import threading
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import structlog
import trustme
from aiohttp import web

from rfqbot.sim.clock import SimClock
from rfqbot.sim.config import SimConfig
from rfqbot.sim.faults import Faults
from rfqbot.sim.faults_state import FaultState
from rfqbot.sim.listenkeys import ListenKeys
from rfqbot.sim.lps import BackgroundTraffic, LiquidityProviders, ReferencePrices
from rfqbot.sim.market import Market
from rfqbot.sim.rest import RestApi
from rfqbot.sim.spotfeed import SpotFeed
from rfqbot.sim.streams import StreamHub
from rfqbot.sim.truth import GroundTruth
from rfqbot.sim.venue_errors import VenueReject

log = structlog.get_logger(__name__)
ACCOUNT = "sim-account"
CA_FILE_NAME = "rfqbot-sim-ca.pem"   # written into config.ca_dir (a temp dir when not given)


@dataclass
class _State:
    """Everything that lives on the loop thread."""

    clock: SimClock
    truth: GroundTruth
    faults: FaultState
    keys: ListenKeys
    hub: StreamHub
    market: Market
    refs: ReferencePrices
    lps: LiquidityProviders
    background: BackgroundTraffic
    spot: SpotFeed
    rest: RestApi


class Simulator:
    """``Simulator(SimConfig(...)).start()`` -> a venue on ``rest_url`` / ``ws_url``."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = dataclasses.replace(config) if config else SimConfig()
        self.config.validate()
        master = random.Random(self.config.seed)
        # one child generator per concern, drawn in a fixed order (see lps.py)
        self._rngs = {name: random.Random(master.getrandbits(64))
                      for name in ("credentials", "ids", "walk", "lps", "background", "spot",
                                   "keys")}
        creds = self._rngs["credentials"]
        alphabet = string.ascii_letters + string.digits
        self.api_key = self.config.api_key or "".join(creds.choice(alphabet) for _ in range(64))
        self.api_secret = (self.config.api_secret
                           or "".join(creds.choice(alphabet) for _ in range(64)))
        self.user_id = str(creds.randrange(10**18, 10**19))
        self.faults = Faults(self)
        self.state: _State
        self.port = 0
        self.ca_file: str | None = None
        self.ground_truth_path = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._tmpdir: str | None = None

    # ------------------------------------------------------------------ public API
    @property
    def rest_url(self) -> str:
        return f"{'https' if self.config.tls else 'http'}://{self._url_host()}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.config.tls else 'ws'}://{self._url_host()}:{self.port}"

    def _url_host(self) -> str:
        return f"[{self.config.host}]" if ":" in self.config.host else self.config.host

    def start(self, timeout: float = 15.0) -> Simulator:
        """Start the loop thread; return once the port is listening."""
        if self._thread is not None:
            raise RuntimeError("simulator already started; create a new Simulator to restart")
        self._tmpdir = tempfile.mkdtemp(prefix="rfqbot-sim-")
        self.ground_truth_path = (self.config.ground_truth_path
                                  or str(Path(self._tmpdir) / "ground-truth.jsonl"))
        try:
            ssl_context = self._make_tls() if self.config.tls else None
        except OSError:   # the CA folder is not writable: leave no temp dir behind
            self._release_files()
            raise
        self._thread = threading.Thread(target=self._thread_main, args=(ssl_context,),
                                        name="rfqbot-sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"simulator did not start within {timeout} s")
        if self._startup_error is not None:
            self._thread.join(timeout)
            self._release_files()
            raise RuntimeError(f"simulator failed to start on {self.config.host}:"
                               f"{self.config.port}: {self._startup_error}") \
                from self._startup_error
        log.info("sim.started", rest_url=self.rest_url, ws_url=self.ws_url, ca_file=self.ca_file,
                 ground_truth=self.ground_truth_path)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection and the server, stop the loop, join the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            future.result(timeout)
        except concurrent.futures.TimeoutError:
            log.warning("sim.stop_timeout", timeout=timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._release_files()

    def _release_files(self) -> None:
        state = getattr(self, "state", None)
        if state is not None:
            state.truth.close()
        if self._tmpdir:   # holds only what the caller did not ask to keep elsewhere
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def truth(self, event: str | None = None) -> list[dict[str, Any]]:
        """Ground-truth events so far (dicts, oldest first), optionally of one kind."""
        return self.state.truth.events(event)

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 10.0,
             **kwargs: Any) -> Any:
        """Run ``fn`` on the simulator loop and return its result (awaiting coroutines)."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("simulator not started")

        async def run() -> Any:
            result = fn(*args, **kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        if threading.current_thread() is self._thread:
            raise RuntimeError("Simulator.call from the loop thread; call the _do_ method")
        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout)

    def control(self, action: str, **kwargs: Any) -> Any:
        """Same as POST /sim/control with ``{"action": action, **kwargs}``."""
        return self.call(self.faults.dispatch, {"action": action, **kwargs})

    def accept_latencies(self) -> list[dict[str, Any]]:
        """For benchmarks: each accept matched with the last bestQuote push before it that
        carried its quote, and the ns between writing that frame and the request arriving."""
        pushes_by_rfq: dict[str, list[dict[str, Any]]] = {}
        for push in self.truth("push"):
            if push.get("topic") == "bestQuote":
                pushes_by_rfq.setdefault(push["rfq_id"], []).append(push)
        rows = []
        for accept in self.truth("accept_received"):
            seen = [p for p in pushes_by_rfq.get(accept.get("rfq_id") or "", ())
                    if accept.get("quote_id") in p["quote_ids"] and p["perf_ns"] <= accept["perf_ns"]]
            if seen:
                rows.append({"rfq_id": accept["rfq_id"], "quote_id": accept["quote_id"],
                             "push_perf_ns": seen[-1]["perf_ns"],
                             "accept_perf_ns": accept["perf_ns"],
                             "latency_ns": accept["perf_ns"] - seen[-1]["perf_ns"]})
        return rows

    def rfq_status(self, rfq_id: str) -> str | None:
        """Test helper: the RFQ's current status as the venue holds it."""
        return self.call(lambda: getattr(self.state.market.rfqs.get(rfq_id), "status", None))

    def reference_price(self, symbol: str) -> Decimal:
        """Test helper: the current reference price of a spot symbol (e.g. BTCUSDT)."""
        return self.call(lambda: self.state.refs.price[symbol])

    # ------------------------------------------------------------------ internals
    def _make_tls(self) -> ssl.SSLContext:
        ca = trustme.CA()
        names = list(dict.fromkeys(["127.0.0.1", "localhost", self.config.host]))
        cert = ca.issue_cert(*names)
        ca_dir = Path(self.config.ca_dir or self._tmpdir or ".")
        ca_dir.mkdir(parents=True, exist_ok=True)
        self.ca_file = str(ca_dir / CA_FILE_NAME)
        ca.cert_pem.write_to_path(self.ca_file)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        return context

    def _thread_main(self, ssl_context: ssl.SSLContext | None) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup(ssl_context))
        except Exception as exc:  # noqa: BLE001 - reported to start()'s caller, who raises it
            self._startup_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    def _later(self, delay_s: float, fn: Callable[[], None]) -> asyncio.TimerHandle:
        assert self._loop is not None
        return self._loop.call_later(max(0.0, delay_s), self._guarded, fn)

    def _guarded(self, fn: Callable[[], None]) -> None:
        """Timer callbacks: bad input or a bug in one RFQ must not stop the venue."""
        try:
            fn()
        except VenueReject as reject:
            log.info("sim.timer_rejected", code=reject.code, msg=reject.msg)
        except Exception:  # noqa: BLE001 - keep the venue alive, but say loudly what broke
            log.exception("sim.timer_failed")

    async def _startup(self, ssl_context: ssl.SSLContext | None) -> None:
        cfg = self.config
        clock = SimClock(cfg.time_scale)
        truth = GroundTruth(self.ground_truth_path, clock.now_ms, cfg.truth_in_memory)
        faults = FaultState()
        hub_ref: list[StreamHub] = []

        def key_ended(key: str, why: str) -> None:
            asyncio.ensure_future(hub_ref[0].close_for_key(key))

        keys = ListenKeys(cfg.listen_key_life_s, clock, self._rngs["keys"], truth, self._later,
                          key_ended)
        hub = StreamHub(cfg, clock, truth, faults, keys)
        hub_ref.append(hub)
        market = Market(cfg, clock, self._rngs["ids"], truth, hub, self._later)
        refs = ReferencePrices(cfg.pairs, self._rngs["walk"], Decimal(cfg.reference_step_bps))
        lps = LiquidityProviders(market, refs, cfg.effective_lps(), self._rngs["lps"], self._later)
        background = BackgroundTraffic(market, cfg, self._rngs["background"], self._later)
        spot = SpotFeed(refs, hub, clock, self._rngs["spot"])
        rest = RestApi(cfg, clock, market, keys, faults, truth, ACCOUNT, self.user_id,
                       self.faults.dispatch)
        rest.api_key, rest.api_secret = self.api_key, self.api_secret
        self.state = _State(clock, truth, faults, keys, hub, market, refs, lps, background,
                            spot, rest)
        app = web.Application()
        rest.routes(app)
        app.router.add_get("/quote/ws/v1", hub.handle_public)
        app.router.add_get("/api/v1/ws/{listen_key}", hub.handle_private)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.host, cfg.port, ssl_context=ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]
        truth.record("sim_started", seed=cfg.seed, port=self.port, time_scale=str(cfg.time_scale))
        background.start()
        if cfg.spot_streams or cfg.reference_tick_s > 0:
            self._tasks.append(asyncio.ensure_future(self._tick_loop()))

    async def _tick_loop(self) -> None:
        state = self.state
        while True:
            await asyncio.sleep(max(0.01, state.clock.real_s(self.config.reference_tick_s)))
            self._guarded(state.spot.tick)

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        hub = self.state.hub
        for conn in list(hub.public_conns) + list(hub.private_conns):
            await conn.close()
        if self._runner is not None:
            await self._runner.cleanup()
        current = asyncio.current_task()
        for task in asyncio.all_tasks():
            if task is not current:
                task.cancel()
        self.state.truth.record("sim_stopped")
