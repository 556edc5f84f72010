"""REST side of the venue: routes, authentication order, error bodies, REST-level faults.

Order of checks per signed request: API key header -> rate limit -> signature -> timestamp ->
the endpoint. Every answer is JSON; errors are ``{"code": ..., "msg": ...}`` with the status the
documents give (400, 429, 418) or a 5xx injected by a fault.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any, Awaitable, Callable

import structlog
from aiohttp import web

from rfqbot.sim import queries
from rfqbot.sim import venue_errors as err
from rfqbot.sim import wirejson
from rfqbot.sim.auth import RateLimiter, parse_params, verify
from rfqbot.sim.clock import SimClock
from rfqbot.sim.config import SimConfig
from rfqbot.sim.faults_state import FaultState
from rfqbot.sim.listenkeys import ListenKeys
from rfqbot.sim.market import Market
from rfqbot.sim.truth import GroundTruth
from rfqbot.sim.wirejson import dec_text

log = structlog.get_logger(__name__)

Endpoint = Callable[[str, dict[str, str], web.Request], Any]
MP = "/api/v1/market-place"


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=wirejson.dumps(body), status=status, content_type="application/json")


class RestApi:
    def __init__(self, config: SimConfig, clock: SimClock, market: Market, keys: ListenKeys,
                 faults: FaultState, truth: GroundTruth, account: str, user_id: str,
                 control: Callable[[dict[str, Any]], Awaitable[Any]]) -> None:
        self.config = config
        self.clock = clock
        self.market = market
        self.keys = keys
        self.faults = faults
        self.truth = truth
        self.account = account
        self.user_id = user_id
        self.control = control
        self.api_key = ""
        self.api_secret = ""
        self.limiter = RateLimiter(config.query_per_s, config.order_per_s, config.penalty_s, clock)
        headers = [config.api_key_header]
        if config.accept_both_key_headers:
            headers += ["X-HK-APIKEY", "X-APIKEY"]
        self.key_headers = list(dict.fromkeys(headers))

    def routes(self, app: web.Application) -> None:
        signed = self._signed
        app.router.add_get("/api/v1/time", self._time)
        app.router.add_get("/api/v1/ping", self._ping)
        app.router.add_get("/api/v1/account", signed("query", self._account))
        app.router.add_get(f"{MP}/get-pairs", signed("query", self._pairs))
        app.router.add_post(f"{MP}/create-rfq", signed("order", self._create))
        app.router.add_post(f"{MP}/accept-quote", signed("order", self._accept))
        app.router.add_get(f"{MP}/rfqs", signed("query", self._history))
        app.router.add_get(f"{MP}/rfq-active/{{rfq_id}}", signed("query", self._active))
        app.router.add_post("/api/v1/userDataStream", signed("query", self._key_create))
        app.router.add_put("/api/v1/userDataStream", signed("query", self._key_extend))
        app.router.add_delete("/api/v1/userDataStream", signed("query", self._key_delete))
        app.router.add_post("/sim/control", self._control)

    # ---------------------------------------------------------------- the common path
    def _signed(self, kind: str, endpoint: Endpoint) -> Callable[[web.Request], Awaitable[Any]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            arrived_ns = time.perf_counter_ns()
            try:
                if self.faults.forced_status:
                    forced, penalty = self.faults.forced_status.pop(0)
                    if penalty:
                        self.limiter.force_penalty(self.api_key)
                    raise err.rate_limited() if forced == 429 else err.banned()
                api_key = next((request.headers[h] for h in self.key_headers
                                if h in request.headers), "")
                if not api_key or api_key != self.api_key:
                    raise err.invalid_key()
                self.limiter.check(api_key, kind, count=self.config.rate_limits)
                raw_query = request.raw_path.partition("?")[2]
                raw_body = await self._body(request)
                params = parse_params(raw_query, raw_body)
                verify(self.api_secret, raw_query, raw_body, params, self.clock,
                       self.config.recv_window_default_ms)
                if endpoint == self._accept:
                    self.truth.record("accept_received", perf_ns=arrived_ns,
                                      rfq_id=params.get("rfqId"), quote_id=params.get("quoteId"),
                                      action=params.get("action"))
                self._maybe_server_error(request.path, endpoint, params, request)
                result = endpoint(self.account, params, request)
                status, body = 200, result
            except err.VenueReject as reject:
                status, body = reject.http_status, reject.body()
                if endpoint == self._accept:
                    self.truth.record("accept_result", outcome="rejected", http_status=status,
                                      code=reject.code)
            if endpoint == self._accept and status == 200:
                status, body = self._accept_outcome(body)
            await self._maybe_delay(request.path)
            return json_response(body, status)
        return handler

    def _maybe_server_error(self, path: str, endpoint: Endpoint, params: dict[str, str],
                            request: web.Request) -> None:
        """A pending 5xx fault for this path: do the work or not, then answer 5xx anyway.

        That is the venue's documented uncertainty: after a 5xx the request may have happened.
        """
        match = next((f for f in self.faults.http_5xx if f[0] in path), None)
        if match is None:
            return
        self.faults.http_5xx.remove(match)
        _, status, applied = match
        outcome = "not applied"
        if applied:
            try:
                result = endpoint(self.account, params, request)
                outcome = result.get("status", "applied") if isinstance(result, dict) else "applied"
            except err.VenueReject as reject:
                outcome = f"rejected {reject.code}"
        name = "accept_fault" if endpoint == self._accept else "http_fault"
        self.truth.record(name, path=path, http_status=status, applied=applied, outcome=outcome,
                          rfq_id=params.get("rfqId"), quote_id=params.get("quoteId"))
        raise err.VenueReject(-1000, "An unknown error occurred while processing the request",
                              http_status=status)

    @staticmethod
    async def _body(request: web.Request) -> str:
        if not request.can_read_body:
            return ""
        try:
            return (await request.read()).decode("utf-8")
        except UnicodeDecodeError:
            raise err.VenueReject(-1004, "Bad request: the body is not UTF-8 form data") from None

    def _accept_outcome(self, body: dict[str, Any]) -> tuple[int, Any]:
        """Record the outcome of an accept answered 200. (A pending 5xx fault never gets here:
        ``_maybe_server_error`` ran before the endpoint, recorded ``accept_fault`` and raised.)"""
        self.truth.record("accept_result", outcome=body.get("status"), http_status=200,
                          rfq_id=body.get("rfqId"), quote_id=body.get("quoteId"))
        return 200, body

    async def _maybe_delay(self, path: str) -> None:
        faults = self.faults
        if faults.delay_s <= 0 or (faults.delay_path and faults.delay_path not in path):
            return
        if faults.delay_count is not None:
            if faults.delay_count <= 0:
                return
            faults.delay_count -= 1
        await asyncio.sleep(faults.delay_s)

    # ---------------------------------------------------------------- endpoints
    async def _time(self, request: web.Request) -> web.Response:
        server_time = self.clock.now_ms()
        await self._maybe_delay(request.path)   # a slow answer carries an older time, as real
        return json_response({"serverTime": server_time})

    async def _ping(self, request: web.Request) -> web.Response:
        await self._maybe_delay(request.path)
        return json_response({})

    def _account(self, owner: str, params: dict[str, str], request: web.Request) -> Any:
        balances = [{"asset": asset, "assetId": asset, "assetName": asset,
                     "total": dec_text(Decimal(str(amount))), "free": dec_text(Decimal(str(amount))),
                     "locked": "0"} for asset, amount in self.config.balances.items()]
        return {"balances": balances, "userId": self.user_id}

    def _pairs(self, owner: str, params: dict[str, str], request: web.Request) -> Any:
        rows = []
        for p in self.config.pairs:
            row: dict[str, Any] = {
                "baseCcy": p.base, "quoteCcy": p.quote, "basePrecision": p.base_precision,
                "quotePrecision": p.quote_precision, "retailAllowed": p.retail_allowed,
                "minTradeBaseQuantity": p.min_base, "maxTradeBaseQuantity": p.max_base,
                "minTradeQuoteQuantity": p.min_quote, "maxTradeQuoteQuantity": p.max_quote,
                "piAllowed": True, "corporateAllowed": True, "omnibusAllowed": True,
                "institutionAllowed": True, "tradingStatus": p.trading_status}
            if p.is_sto is not None:
                row["isSTO"] = p.is_sto
            rows.append(row)
        return {"quotePair": rows}

    def _create(self, owner: str, params: dict[str, str], request: web.Request) -> Any:
        rfq = self.market.create_rfq(owner, params)
        return {"rfqId": rfq.rfq_id, "rfqClOrderId": rfq.cl_order_id, "status": rfq.status}

    def _accept(self, owner: str, params: dict[str, str], request: web.Request) -> Any:
        return self.market.accept(owner, params)

    def _history(self, owner: str, params: dict[str, str], request: web.Request) -> Any:
        return queries.history(self.market, owner, params)

    def _active(self, owner: str, params: dict[str, str], request: web.Request) -> Any:
        return queries.active(self.market, owner, request.match_info["rfq_id"])

    def _key_create(self, owner: str, params: dict[str, str], request: web.Request) -> Any:
        return {"listenKey": self.keys.create(owner)}

    def _key_extend(self, owner: str, params: dict[str, str], request: web.Request) -> Any:
        self.keys.extend(owner, params.get("listenKey", ""))
        return {}

    def _key_delete(self, owner: str, params: dict[str, str], request: web.Request) -> Any:
        self.keys.delete(owner, params.get("listenKey", ""))
        return {}

    async def _control(self, request: web.Request) -> web.Response:
        try:
            command = wirejson.loads(await request.text())
            if not isinstance(command, dict) or not isinstance(command.get("action"), str):
                raise ValueError('send a JSON object with an "action" string')
            result = await self.control(command)
        except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
            return json_response({"ok": False, "error": f"{type(exc).__name__}: {exc}"},
                                 status=400)
        return json_response({"ok": True, "result": result})
