"""Signed REST client for one venue: pooling, clock offset, pacing, and failures turned into errors.

Every failure a caller can act on becomes one of the classes in ``rfqbot.errors``. The line
that matters most: a state-changing call (create, accept, decline) that may have reached the
venue is never retried here; it raises ``OutcomeUnknown`` and reconciliation finds out what
happened. Queries are safe to repeat and retry with backoff.
"""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
from decimal import Decimal
from typing import Any, Callable, Mapping, Sequence

import requests
import structlog
import urllib3
from requests.adapters import HTTPAdapter

from rfqbot.backoff import Backoff
from rfqbot.clock import Clock, SystemClock, VenueClock
from rfqbot.venue.tls import ca_context
from rfqbot.errors import (Banned, ConfigError, NotSent, OutcomeUnknown, RateLimited, TransportError,
                           VenueError)
from rfqbot.events import VenueCall
from rfqbot.decode import server_time_from_json
from rfqbot.normalise import NormaliseError
from rfqbot.venue.order_line import OrderLine, SendFailed, SentRequest
from rfqbot.venue.pacing import CallKind, RateGate, gate_for, key_fingerprint
from rfqbot.venue.signing import SignedRequest, get_signer
from rfqbot.venue.profiles import VenueProfile

log = structlog.get_logger(__name__)

DEFAULT_PAUSE_S = 60.0
SUCCESS_CODES = frozenset({"0", "00", "000", "0000", "200"})
# Venue codes that say the venue itself does not know whether an order-type call executed.
OUTCOME_UNKNOWN_CODES = frozenset({"-1000", "-1001", "-1006", "-1007"})
CLOCK_RESYNC_CODE = "-1021"
# Longest the engine thread may spend writing an order (begin_order): only a venue that stopped
# reading fills a socket buffer with a few hundred bytes; the outcome is then unknown.
ENGINE_WRITE_TIMEOUT_S = 0.5
# Parameters that grant access; the observer and the logs get a fingerprint instead.
_SECRET_PARAMS = frozenset({"listenKey", "signature"})

_SYSTEM_CLOCK = SystemClock()


def venue_code(body: Any) -> str | None:
    """The venue's error code as text: ``"0001"`` stays ``"0001"``, ``-1021`` becomes ``"-1021"``."""
    if isinstance(body, Mapping) and "code" in body and body["code"] is not None:
        code = body["code"]
        if isinstance(code, Decimal) and code == code.to_integral_value():
            code = int(code)
        return str(code).strip()
    return None


class _CaAddingAdapter(HTTPAdapter):
    """Trust the system CAs *plus* ``ca_file`` (requests' ``verify=path`` would replace them)."""

    def __init__(self, ca_file: str, **kwargs: Any) -> None:
        # The config check loaded this file already, but it may have changed since (the simulator
        # rewrites its CA): say which file and why, as a config error (exit 78), not a traceback.
        try:
            self._context: ssl.SSLContext = ca_context(ca_file)
        except ValueError as exc:
            raise ConfigError(str(exc), key="venue.ca_file") from None
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)


POOL_MAXSIZE = 20


class _SendFailed(Exception):
    """The request may or may not have reached the venue (no usable answer came back)."""

    def __init__(self, reason: str, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class _Retry(Exception):
    """A query attempt failed in a way that may pass on retry."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RestClient:
    """HTTP transport for one venue profile and one API key; thread-safe for concurrent calls."""

    def __init__(self, profile: VenueProfile, api_key: str | None = None, api_secret: str | None = None, *,
                 clock: Clock | None = None, observer: Callable[[VenueCall], None] | None = None,
                 on_ban: Callable[[Banned], None] | None = None, gate: RateGate | None = None,
                 query_retries: int = 2, backoff_base_s: float = 0.5, backoff_cap_s: float = 5.0) -> None:
        self.profile = profile
        self.clock = clock or _SYSTEM_CLOCK
        self.venue_clock = VenueClock(self.clock)
        self.observer = observer
        self.on_ban = on_ban
        self.gate = gate or gate_for(self.clock, api_key)
        self.query_retries = query_retries
        self._backoff = (backoff_base_s, backoff_cap_s)
        self._api_key = api_key
        self._api_secret = api_secret
        self._signer = get_signer(profile.signer)
        self._base = profile.rest_url.rstrip("/")
        self._timeout = (profile.connect_timeout_s, profile.read_timeout_s)
        self.session = requests.Session()
        self.session.trust_env = False  # no .netrc credentials or env CA overrides sneaking in
        # As many pooled connections as the most REST workers the config allows (engine.accept_workers
        # <= 16) plus the scheduler's: beyond the pool, connections are dropped and re-handshaken.
        size = POOL_MAXSIZE
        adapter: HTTPAdapter = (_CaAddingAdapter(profile.ca_file, pool_connections=1, pool_maxsize=size)
                                if profile.ca_file else HTTPAdapter(pool_connections=1, pool_maxsize=size))
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        # Order calls (accept above all) go straight to requests' pool for this venue: see
        # rfqbot/venue/order_line.py and _send_lean.
        self._pool_probe = requests.Request("POST", self._base + "/").prepare()
        self._orders = OrderLine(self._order_pool, self._base,
                                 {"User-Agent": str(self.session.headers.get("User-Agent", "rfqbot")),
                                  "Accept": "*/*", "Connection": "keep-alive"},
                                 profile.connect_timeout_s, profile.read_timeout_s)
        # Order requests whose bytes were written (or began to be), by path: "engine" = begin_order
        # (the caller's thread right after the decision commits), "worker" = request(). A daemon
        # whose accepts mostly go the worker way lacks a warm connection (see keep_warm).
        self.orders_written = {"engine": 0, "worker": 0}
        self._count_lock = threading.Lock()
        # Local ms at which this thread's last request actually left (after any pacing wait):
        # the clock sync's round trip must not include time spent waiting for a pacing slot.
        self._sent = threading.local()

    def close(self) -> None:
        self.session.close()

    # --- the one request path -------------------------------------------------------------

    def request(self, method: str, path: str, params: Sequence[tuple[str, str]] | Mapping[str, Any] = (), *,
                signed: bool = True, kind: CallKind = "query", send_by_ms: int | None = None,
                retries: int | None = None) -> Any:
        """Send one call and return its decoded JSON (``Decimal`` for every fractional number).

        ``kind="order"`` marks a state-changing call: paced at the order rate and never
        retried after it may have reached the venue. A ``-1021`` (timestamp outside
        recvWindow) means the venue refused it, so the clock is resynced and the call sent
        once more. ``retries`` overrides ``query_retries`` for this call (a probe wants none).
        """
        return self._request(method.upper(), path, _items(params), signed, kind, send_by_ms, resynced=False,
                             max_retries=self.query_retries if retries is None else retries)

    def _request(self, method: str, path: str, items: list[tuple[str, str]], signed: bool, kind: CallKind,
                 send_by_ms: int | None, *, resynced: bool, max_retries: int | None = None) -> Any:
        max_retries = self.query_retries if max_retries is None else max_retries
        retries = 0
        backoff: Backoff | None = None
        while True:
            try:
                return self._send_once(method, path, items, signed, kind, send_by_ms)
            except VenueError as exc:
                if exc.code != CLOCK_RESYNC_CODE or resynced:
                    raise
                resynced = True
                self._resync(path)
            except _Retry as exc:
                retries += 1
                if retries > max_retries:
                    raise TransportError(path, f"{exc.reason} (gave up after {retries} attempts)") from None
                backoff = backoff or Backoff(*self._backoff)
                self.clock.sleep(backoff.next_delay())

    def _resync(self, path: str) -> None:
        log.warning("venue clock skew; resyncing and retrying once", endpoint=path)
        self.sync_clock()

    def begin_order(self, method: str, path: str, params: Sequence[tuple[str, str]] | Mapping[str, Any] = (), *,
                    send_by_ms: int | None = None) -> "OrderInFlight | None":
        """Send a signed order-type call now, on this thread, if that cannot block; else None.

        The engine calls this right after an accept decision commits, so the request leaves
        without a hand-over to a REST worker; the worker then only waits for the answer
        (``OrderInFlight.finish``). "Cannot block" means: not banned or paused by the venue, an
        order pacing slot free now, the send-by time not passed, and a warm pooled connection
        (a new one would put a TCP + TLS handshake on the engine thread). On None nothing was
        sent and no pacing slot was used: the caller falls back to ``request`` on a worker,
        which waits, resends after -1021 and raises exactly as always.
        """
        method = method.upper()
        items = _items(params)
        if send_by_ms is not None and self.venue_clock.now_ms() > send_by_ms:
            return None
        conn = self._orders.take_warm()
        if conn is None:
            return None
        try:
            prepared = self.prepare(method, path, items, True)
            target = path + (f"?{prepared.query}" if prepared.query else "")
            data = self._orders.encode(method, target, prepared.body, prepared.headers)
        except Exception as exc:  # nothing was written: a definite "not sent"
            self._orders.give_back(conn)
            raise NotSent(f"{path}: not sent, the request could not be built ({type(exc).__name__}: {exc})") \
                from None
        if not self.gate.try_send("order"):
            self._orders.give_back(conn)
            return None
        report = _CallReport(self, method, path, items, "order")
        sent = self._orders.send(conn, method, data, write_timeout_s=ENGINE_WRITE_TIMEOUT_S)
        self._count_written("engine")
        return OrderInFlight(self, sent, report, method, path, items, send_by_ms)

    def rehearse_order(self, method: str, path: str, params: Sequence[tuple[str, str]] | Mapping[str, Any] = ()) -> None:
        """Build an order call's signed request bytes, as ``begin_order`` does, and drop them: no
        connection is taken, no pacing slot used, nothing written or logged. The engine's idle
        rehearsal calls it so signing and encoding are in the CPU caches when an accept must
        leave (measured: 0.21 ms after 150 ms idle against 0.02 ms kept warm)."""
        method = method.upper()
        prepared = self.prepare(method, path, _items(params), True)
        self._orders.encode(method, path + (f"?{prepared.query}" if prepared.query else ""), prepared.body,
                            prepared.headers)

    def _count_written(self, path: str) -> None:
        with self._count_lock:
            self.orders_written[path] += 1

    def prepare(self, method: str, path: str, items: Sequence[tuple[str, str]], signed: bool) -> SignedRequest:
        """Encode and sign a request at the current venue time (the single construction point)."""
        return self._signer.prepare(
            method, path, items, api_key=self._api_key, api_secret=self._api_secret,
            api_key_header=self.profile.api_key_header, timestamp_ms=self.venue_clock.now_ms(),
            recv_window_ms=self.profile.recv_window_ms, signed=signed)

    def _send_once(self, method: str, path: str, items: list[tuple[str, str]], signed: bool, kind: CallKind,
                   send_by_ms: int | None = None) -> Any:
        self.gate.before_send(kind, path)
        if send_by_ms is not None:
            # Checked after any pacing wait and before every (re)send: a worker queue, a pacing
            # slot or a -1021 resync must not carry an accept past the point where the quote has
            # too little life left. Not sent is a definite outcome: nothing reached the venue.
            late_ms = self.venue_clock.now_ms() - send_by_ms
            if late_ms > 0:
                raise NotSent(f"{path}: not sent, {late_ms} ms past its send-by time by the venue clock "
                              "(the quote would have less than engine.min_time_left_ms left)")
        self._sent.ms = self.clock.now_ms()
        prepared = self.prepare(method, path, items, signed)
        target = path + (f"?{prepared.query}" if prepared.query else "")
        report = _CallReport(self, method, path, items, kind)
        try:
            # Order-type calls (accept above all) take the lean path: same pool, same TLS
            # policy, none of requests' per-call work. Everything else stays on requests.
            send = self._send_lean if kind == "order" else self._send_requests
            status, text, retry_after = send(method, target, prepared)
        except _SendFailed as exc:
            if not exc.retryable and kind != "order":
                # Retrying cannot help (e.g. an untrusted certificate): say so at once.
                report.done(None, None, "error", exc.reason)
                raise TransportError(path, exc.reason) from None
            return report.failed(None, None, exc.reason)
        return self._answer(path, kind, report, status, text, retry_after)

    def _send_requests(self, method: str, target: str, prepared: SignedRequest) -> tuple[int, str, str | None]:
        try:
            response = self.session.request(method, self._base + target, data=prepared.body,
                                            headers=prepared.headers, timeout=self._timeout, verify=True,
                                            allow_redirects=False)
        except requests.RequestException as exc:
            raise _SendFailed(*_describe_failure(exc, self._base)) from None
        return response.status_code, response.text, response.headers.get("Retry-After")

    def _send_lean(self, method: str, target: str, prepared: SignedRequest) -> tuple[int, str, str | None]:
        """One order request, sent and answered on this thread, through ``OrderLine`` on the
        urllib3 pool requests itself uses for this venue (opening a connection if none is warm).

        The worker-side twin of ``begin_order``. Measured on TLS loopback against the simulator
        (benchmarks/, one warm connection): ``requests.Session.request`` 0.55 ms p50 per round
        trip, ``urlopen`` on its pool 0.27 ms, a bare ``http.client`` 0.20 ms: orders skip
        requests' per-call work (settings merging, hooks, cookies, preparation) but keep its
        pool, its TLS verification (system/certifi CAs, ``ca_file``) and thread safety. No
        retries and no redirects, as on the requests path: an order is sent at most once.
        """
        try:
            data = self._orders.encode(method, target, prepared.body, prepared.headers)
        except (ValueError, UnicodeError) as exc:
            raise NotSent(f"{target.split('?', 1)[0]}: not sent, the request could not be built ({exc})") from None
        try:
            conn = self._orders.take()
            sent = self._orders.send(conn, method, data)
            self._count_written("worker")
            answer = sent.read()
        except SendFailed as exc:
            raise _SendFailed(*_describe_failure(exc.cause, self._base)) from None
        return answer.status, _body_text(answer.body, answer.content_type), answer.retry_after

    def _order_pool(self) -> urllib3.HTTPConnectionPool:
        """requests' own pool for the venue (same key, so the same TLS settings and connections)."""
        adapter = self.session.get_adapter(self._base)
        with_tls = getattr(adapter, "get_connection_with_tls_context", None)
        if with_tls is None:  # requests < 2.32.2: the older (deprecated there) lookup
            return adapter.get_connection(self._base + "/")  # type: ignore[attr-defined,no-any-return]
        return with_tls(self._pool_probe, verify=True)  # type: ignore[no-any-return]

    def _answer(self, path: str, kind: CallKind, report: _CallReport, status: int, text: str,
                retry_after: str | None) -> Any:
        """Turn one HTTP answer into a result or the right error (the same for both transports)."""
        if status == 429:
            pause = _retry_after(retry_after)
            self.gate.pause(pause)
            report.done(status, venue_code(_parse(text)), "error", f"rate limited; pausing {pause:.0f} s")
            raise RateLimited(pause, path)
        if status == 418:
            self.gate.ban()
            report.done(status, venue_code(_parse(text)), "error", "banned (HTTP 418)")
            banned = Banned(path)
            log.critical("venue banned this IP; rfqbot stops sending requests", endpoint=path, status=status)
            if self.on_ban is not None:
                try:
                    self.on_ban(banned)
                except Exception:  # a broken callback must not hide the ban
                    log.exception("on_ban callback failed")
            raise banned
        body = _parse(text)
        code = venue_code(body)
        if status >= 500:
            return report.failed(status, code, f"HTTP {status} from the venue")
        if kind == "order" and code in OUTCOME_UNKNOWN_CODES:
            return report.failed(status, code, f"venue code {code}: execution status unknown")
        message = str(body.get("msg", "")) if isinstance(body, Mapping) else ""
        if kind == "order" and status >= 400 and code is None:
            # A 4xx without the venue's {"code", "msg"} body came from something in between (a
            # proxy's 408/499, a load balancer): no proof the venue did not act on the order.
            return report.failed(status, code, f"HTTP {status} without a venue error body")
        if status >= 400 or (code is not None and code not in SUCCESS_CODES and message):
            report.done(status, code, "error", message or f"HTTP {status}")
            raise VenueError(code or f"HTTP{status}", message or (text[:200] if text else f"HTTP {status}"),
                             status, path)
        if status < 200 or status >= 300:
            return report.failed(status, code, f"unexpected HTTP {status}")
        if body is _UNPARSED and text.strip():
            return report.failed(status, code, "the response body is not JSON")
        report.done(status, code, "ok")
        return None if body is _UNPARSED else body

    # --- clock ----------------------------------------------------------------------------

    def sync_clock(self) -> int:
        """Measure the venue clock offset from ``GET /api/v1/time``; return it in ms."""
        before = self.clock.now_ms()
        body = self.request("GET", "/api/v1/time", signed=False)
        after = self.clock.now_ms()
        before = max(before, getattr(self._sent, "ms", before))  # not the wait for a pacing slot
        try:
            server_ms = server_time_from_json(body)
        except NormaliseError as exc:
            raise TransportError("/api/v1/time", f"bad serverTime: {exc}") from None
        offset = server_ms - (before + after) // 2
        self.venue_clock.set_offset(offset)
        log.info("venue clock synced", offset_ms=offset, round_trip_ms=after - before)
        return offset


class OrderInFlight:
    """An order call ``RestClient.begin_order`` sent; ``finish`` (once, on a worker) waits for the
    venue's answer and turns it into a result or an error exactly as ``request`` would."""

    def __init__(self, client: RestClient, sent: SentRequest, report: "_CallReport", method: str, path: str,
                 items: list[tuple[str, str]], send_by_ms: int | None) -> None:
        self._client = client
        self._sent = sent
        self._report = report
        self._call = (method, path, items, send_by_ms)

    def finish(self) -> Any:
        client, (method, path, items, send_by_ms) = self._client, self._call
        try:
            answer = self._sent.read()
        except SendFailed as exc:
            return self._report.failed(None, None, _describe_failure(exc.cause, client._base)[0])
        text = _body_text(answer.body, answer.content_type)
        try:
            return client._answer(path, "order", self._report, answer.status, text, answer.retry_after)
        except VenueError as exc:
            if exc.code != CLOCK_RESYNC_CODE:
                raise
            # Refused for its timestamp, so not applied: resync and send once more, as request() does.
            client._resync(path)
            return client._request(method, path, items, True, "order", send_by_ms, resynced=True)


def _items(params: Sequence[tuple[str, str]] | Mapping[str, Any]) -> list[tuple[str, str]]:
    """Parameters as (name, text) pairs in order, without the ones set to None."""
    return [(k, str(v)) for k, v in (params.items() if isinstance(params, Mapping) else params) if v is not None]


class _Unparsed:
    def __repr__(self) -> str:
        return "<unparsed>"


_UNPARSED: Any = _Unparsed()


def _parse(text: str) -> Any:
    if not text or not text.strip():
        return _UNPARSED
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_no_constants)
    except ValueError:
        return _UNPARSED


def _body_text(data: bytes, content_type: str | None) -> str:
    """Response bytes as text: the declared charset, else UTF-8 (JSON's encoding)."""
    charset = "utf-8"
    if content_type and "charset=" in content_type:
        charset = content_type.split("charset=", 1)[1].split(";", 1)[0].strip().strip('"') or "utf-8"
    try:
        return data.decode(charset, errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


def _no_constants(name: str) -> Any:
    # NaN / Infinity are not JSON and would become floats; treat the body as unreadable.
    raise ValueError(f"non-JSON constant {name}")


def _retry_after(value: str | None) -> float:
    if value:
        try:
            seconds = float(Decimal(value.strip()))
        except ArithmeticError:
            return DEFAULT_PAUSE_S
        if 0 < seconds <= 3600:
            return seconds
    return DEFAULT_PAUSE_S


_QUERY_IN_TEXT = re.compile(r"\?[^\s'\")]*")


def _describe_failure(exc: BaseException, base_url: str) -> tuple[str, bool]:
    """(message a user can act on, whether retrying could help) for a failed send.

    An untrusted certificate will not become trusted by retrying; a refused or timed-out
    connection may pass. The wording names the config key to look at.
    """
    text = f"{type(exc).__name__}: {exc}"
    if "CERTIFICATE_VERIFY_FAILED" in text or "SSLCertVerificationError" in text:
        return (f"the TLS certificate of {base_url} is not trusted: set venue.ca_file to the CA that "
                "signed it (for `rfqbot sim`: ./rfqbot-sim-ca.pem)", False)
    if "NewConnectionError" in text or "Connection refused" in text or "Name or service not known" in text:
        return (f"cannot connect to {base_url}: check venue.rest_url and that the venue is reachable "
                f"({_short(exc)})", True)
    return f"{type(exc).__name__}: request failed ({_short(exc)})", True


def _short(exc: Exception) -> str:
    """Exception text without query strings: they carry the signature and maybe a listen key."""
    text = _QUERY_IN_TEXT.sub("?...", str(exc))
    return text if len(text) <= 200 else text[:200] + "..."


class _CallReport:
    """Times one HTTP attempt and reports it to the observer and the log, without secrets."""

    def __init__(self, client: RestClient, method: str, path: str, items: Sequence[tuple[str, str]],
                 kind: CallKind) -> None:
        self.client = client
        self.method = method
        self.path = path
        self.kind = kind
        self.params = {k: (f"#{key_fingerprint(v)}" if k in _SECRET_PARAMS else v) for k, v in items}
        self.started = time.perf_counter()

    def failed(self, status: int | None, code: str | None, reason: str) -> Any:
        """Report, then raise: ``OutcomeUnknown`` for order-type calls, a retry for queries."""
        if self.kind == "order":
            self.done(status, code, "unknown", reason)
            raise OutcomeUnknown(self.path, reason)
        self.done(status, code, "error", reason)
        raise _Retry(reason)

    def done(self, status: int | None, code: str | None, outcome: str, error: str = "") -> None:
        duration_ms = round((time.perf_counter() - self.started) * 1000, 3)
        level = log.info if outcome == "ok" else log.warning
        level("venue call", method=self.method, endpoint=self.path, status=status, venue_code=code,
              duration_ms=duration_ms, outcome=outcome, error=error or None)
        observer = self.client.observer
        if observer is None:
            return
        call = VenueCall(received_ms=self.client.clock.now_ms(), method=self.method, endpoint=self.path,
                         params=dict(self.params), http_status=status, venue_code=code,
                         duration_ms=duration_ms, outcome=outcome, error=error)  # type: ignore[arg-type]
        try:
            observer(call)
        except Exception:  # the observer only enqueues; its failure must not fail the call
            log.exception("venue call observer failed", endpoint=self.path)
