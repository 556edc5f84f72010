"""WebSocket connections to the venue: one thread per stream, heartbeats, staleness, reconnect.

Why a hand-driven ``websocket.WebSocket`` instead of ``WebSocketApp.run_forever``: the loop
below owns every timing decision (when to ping, when a silent connection is stale, how long to
back off) and can be woken by ``stop()``/``move_to()`` at once, which keeps exactly one live
connection per stream and makes the timings testable with sub-second values. The socket reads
with a short timeout; websocket-client keeps partial frames across timeouts, so polling is safe.

Nothing here touches engine state: decoded frames and lifecycle steps are handed to ``post``
(the engine's queue). Heartbeats are consumed here: private server pings are answered with the
same value, pongs and any other frame mark the connection alive.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from typing import Any, Callable, Sequence
from urllib.parse import unquote, urlsplit

import structlog
import websocket

from rfqbot.backoff import Backoff
from rfqbot.clock import Clock, SystemClock
from rfqbot.events import Event, Heartbeat, RejectedFrame, StreamName, StreamStatus
from rfqbot.streams.records import Decode, SessionEnd, key_hint, public_subscriptions  # noqa: F401 (re-export)

log = structlog.get_logger(__name__)

MAX_FRAME_BYTES = 1 << 20  # 1 MiB: no documented frame comes near it
HEALTHY_SESSION_S = 10.0  # a session with frames that lasted this long resets the backoff
_RAW_SNIPPET = 512  # how much of a rejected oversized frame is kept for the journal

def _abort(ws: "websocket.WebSocket | None") -> None:
    """Shut the socket down from another thread so a blocked read or handshake returns now."""
    sock = getattr(ws, "sock", None)
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: nothing to wake


class StreamConnection:
    """One venue stream: connect, subscribe, keep alive, reconnect; on its own thread.

    Public defaults are set by the caller: ``client_ping_interval_s=10``, ``stale_after_s=30``;
    private: ``client_ping_interval_s=None``, ``answer_server_pings=True``, ``stale_after_s=75``
    (the server pings every 30 s). ``poll_interval_s`` bounds how late a ping, a stale check or
    a stop is noticed; by default a quarter of the shortest interval, at most 0.5 s.
    """

    def __init__(self, name: StreamName, url: str, *, post: Callable[[Event], None],
                 decode: Decode | None = None, subscribe: Sequence[dict[str, Any]] = (),
                 client_ping_interval_s: float | None = None, answer_server_pings: bool = False,
                 stale_after_s: float = 30.0, max_backoff_s: float = 30.0,
                 base_backoff_s: float = 0.5, ca_file: str | None = None,
                 clock: Clock | None = None, on_stale: Callable[[SessionEnd], None] | None = None,
                 connect_timeout_s: float = 10.0, close_timeout_s: float = 1.0,
                 poll_interval_s: float | None = None, max_frame_bytes: int = MAX_FRAME_BYTES,
                 backoff: Backoff | None = None) -> None:
        if decode is None:
            from rfqbot.streams.wire import decode_frame  # lazy: streams/wire.py is the decoding side
            decode = decode_frame
        if stale_after_s <= 0:
            raise ValueError("stale_after_s must be > 0 (streams.*.stale_after_s)")
        if client_ping_interval_s is not None and client_ping_interval_s <= 0:
            raise ValueError("client_ping_interval_s must be > 0 or None (streams.public.ping_interval_s)")
        self.name: StreamName = name
        self._url = url
        self._post = post
        self._decode = decode
        self._subscribe = [dict(m) for m in subscribe]
        self._ping_interval_s = client_ping_interval_s
        self._answer_pings = answer_server_pings
        self._stale_after_s = stale_after_s
        self._ca_file = ca_file
        self._clock: Clock = clock or SystemClock()
        self.on_stale = on_stale  # public: the keeper is built after the stream
        self._connect_timeout_s = connect_timeout_s
        self._close_timeout_s = close_timeout_s
        shortest = min(x for x in (stale_after_s, client_ping_interval_s) if x is not None)
        self._poll_s = poll_interval_s or min(0.5, shortest / 4)
        self._max_frame_bytes = max_frame_bytes
        self._backoff = backoff or Backoff(base_s=min(base_backoff_s, max_backoff_s), cap_s=max_backoff_s)

        self._lock = threading.Lock()  # guards the fields below
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._pending_url: str | None = None
        self._ws: websocket.WebSocket | None = None
        self._wake = threading.Event()
        self._state = "idle"
        self._session = 0
        self._last_frame_ms: int | None = None

    # --- public surface ------------------------------------------------------------------

    @property
    def state(self) -> str:
        """idle, connecting, connected, subscribed, backoff, stopped (last lifecycle step)."""
        return self._state

    @property
    def session(self) -> int:
        """Counter of connection attempts; every StreamStatus carries it."""
        return self._session

    @property
    def last_frame_ms(self) -> int | None:
        """Wall-clock ms of the last frame of any kind (None before the first)."""
        return self._last_frame_ms

    @property
    def url(self) -> str:
        """The URL currently targeted (contains the listen key on the private stream: never log)."""
        with self._lock:
            return self._pending_url or self._url

    def is_alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> bool:
        """Start the connection thread. Idempotent: False when it is already running.

        The lock and the thread check make a second reconnect loop for the same stream
        impossible, whoever calls ``start`` and however often.
        """
        with self._lock:
            if self._stopping:
                raise RuntimeError(f"{self.name} stream was stopped; build a new StreamConnection")
            if self._thread is not None and self._thread.is_alive():
                return False
            self._thread = threading.Thread(target=self._run, name=f"rfqbot-stream-{self.name}",
                                            daemon=True)
            self._thread.start()
            return True

    def stop(self, timeout: float = 5.0) -> bool:
        """Close the connection and join the thread; True when it ended within ``timeout``."""
        with self._lock:
            self._stopping = True
            thread = self._thread
        self._wake.set()
        if thread is None:
            self._set_state("stopped")
            return True
        if thread is threading.current_thread():
            return False
        # The loop notices within one poll and closes politely (close frame); if it is stuck
        # in a handshake or a send, shutting the socket down wakes it.
        grace = min(timeout, self._poll_s + 0.5)
        thread.join(grace)
        if thread.is_alive():
            with self._lock:
                ws = self._ws
            _abort(ws)
            thread.join(max(0.0, timeout - grace))
        if thread.is_alive():
            log.warning("stream_stop_timeout", stream=self.name, timeout_s=timeout)
            return False
        return True

    def move_to(self, url: str) -> None:
        """Drop the current connection and connect to ``url`` (the listen key changed).

        Before ``start`` it just sets the URL. Safe from any thread, including ``on_stale``.
        """
        with self._lock:
            if self._thread is None:
                self._url = url
                return
            self._pending_url = url
        self._wake.set()  # the loop notices within one poll and closes the old connection first

    # --- the loop ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                with self._lock:
                    if self._pending_url is not None:
                        self._url, self._pending_url = self._pending_url, None
                    url = self._url
                    self._session += 1
                    session = self._session
                self._wake.clear()
                end = self._run_session(url, session)
                if self._stopping:
                    break
                if end is None:  # moved: connect to the new URL straight away
                    self._backoff.reset()
                    continue
                self._notify_end(end)
                if self._pending_url is not None:  # on_stale moved us: no point waiting
                    self._backoff.reset()
                    continue
                if self._worked(end):  # a drop after a good session starts the backoff afresh
                    self._backoff.reset()
                delay = self._backoff.next_delay()
                self._status("backoff", f"reconnecting in {delay:.2f} s after {end.reason}", session)
                self._wake.wait(delay)
        except Exception:  # a bug here must not die silently: say so, then report stopped
            log.exception("stream_loop_crashed", stream=self.name)
        finally:
            self._status("stopped", "", self._session)

    def _run_session(self, url: str, session: int) -> SessionEnd | None:
        """One connection from connect to close. None when it ended because of stop/move."""
        self._status("connecting", self._redact(url), session)
        # skip_utf8_validation: websocket-client checks text frames in pure Python, byte by
        # byte (~26 us for a 200-byte frame, more than decoding it); ``_handle_frame`` checks
        # them with ``bytes.decode`` instead, and a bad one is journaled, not a dropped session.
        ws = websocket.WebSocket(sslopt=self._sslopt(url), enable_multithread=True, skip_utf8_validation=True)
        with self._lock:
            if self._stopping or self._pending_url is not None:
                return None
            self._ws = ws
        connected_ms: int | None = None
        frames = 0
        reason, detail = "closed", ""
        try:
            try:
                ws.connect(url, timeout=self._connect_timeout_s, suppress_origin=True)
            except websocket.WebSocketBadStatusException as exc:
                return self._end(url, session, "rejected", None, 0,
                                 f"handshake refused with HTTP {exc.status_code}")
            except (websocket.WebSocketException, OSError, ValueError) as exc:
                if self._interrupted():
                    return None
                return self._end(url, session, "error", None, 0, self._describe(exc))
            connected_ms = self._clock.now_ms()
            self._status("connected", "", session)
            if self._interrupted():
                return None
            ws.settimeout(self._poll_s)
            for message in self._subscribe:
                ws.send(json.dumps(message))
            self._status("subscribed", f"{len(self._subscribe)} subscription(s)", session)

            started = self._clock.monotonic()
            last_frame = last_pong = started
            next_ping = started if self._ping_interval_s else None
            while True:
                if self._interrupted():
                    return None
                now = self._clock.monotonic()
                if next_ping is not None and now >= next_ping:
                    ws.send(json.dumps({"ping": self._clock.now_ms()}))
                    next_ping = now + self._ping_interval_s  # type: ignore[operator]
                if now - last_frame > self._stale_after_s:
                    reason, detail = "stale", f"no frame for {now - last_frame:.1f} s"
                    break
                if next_ping is not None and now - last_pong > self._stale_after_s:
                    reason, detail = "stale", f"no pong for {now - last_pong:.1f} s"
                    break
                try:
                    opcode, data = ws.recv_data(control_frame=True)
                except websocket.WebSocketTimeoutException:
                    continue
                received_ms = self._clock.now_ms()
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    reason, detail = "closed", "server closed the connection"
                    break
                frames += 1
                last_frame = self._clock.monotonic()
                self._last_frame_ms = received_ms
                if opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
                    continue  # protocol-level heartbeat; websocket-client already answered pings
                if self._handle_frame(ws, opcode, data, received_ms):
                    last_pong = last_frame
        except websocket.WebSocketConnectionClosedException:
            if self._interrupted():
                return None
            reason, detail = "closed", "connection closed"
        except (websocket.WebSocketException, OSError, ValueError) as exc:
            if self._interrupted():
                return None
            reason, detail = "error", self._describe(exc)
        finally:
            self._close(ws, graceful=reason != "stale")
            with self._lock:
                self._ws = None
        return self._end(url, session, reason, connected_ms, frames, detail)

    def _handle_frame(self, ws: websocket.WebSocket, opcode: int, data: Any, received_ms: int) -> bool:
        """Decode one data frame; post what the engine needs. True when it was a pong."""
        if opcode == websocket.ABNF.OPCODE_TEXT and isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                self._emit(RejectedFrame(received_ms, self.name,
                                         f"text frame is not valid UTF-8 (byte {exc.start} of {len(data)})",
                                         data[:_RAW_SNIPPET].decode("utf-8", "replace")))
                return False
        if len(data) > self._max_frame_bytes:
            snippet = data[:_RAW_SNIPPET]
            raw = snippet if isinstance(snippet, str) else snippet.decode("utf-8", "replace")
            self._emit(RejectedFrame(received_ms, self.name,
                                     f"frame of {len(data)} bytes exceeds the {self._max_frame_bytes}-byte limit",
                                     raw))
            return False
        try:
            events = self._decode(self.name, data, received_ms)
        except Exception as exc:  # the decoder promises not to raise; a bug must not kill the stream
            log.exception("stream_decoder_raised", stream=self.name)
            raw = data if isinstance(data, str) else data.decode("utf-8", "replace")
            events = [RejectedFrame(received_ms, self.name, f"decoder error: {exc!r}", raw)]
        got_pong = False
        for event in events:
            if isinstance(event, Heartbeat):
                if event.kind == "pong":
                    got_pong = True
                elif event.kind == "ping" and self._answer_pings:
                    value = event.value if event.value is not None else received_ms
                    ws.send(json.dumps({"pong": value}))
                continue
            self._emit(event)
        return got_pong

    # --- helpers -------------------------------------------------------------------------

    def _worked(self, end: SessionEnd) -> bool:
        """A session that received frames for a while: its end is news, not a pattern."""
        if end.connected_ms is None or end.frames == 0:
            return False
        return end.ended_ms - end.connected_ms >= 1000 * min(self._stale_after_s, HEALTHY_SESSION_S)

    def _interrupted(self) -> bool:
        return self._stopping or self._pending_url is not None

    def _end(self, url: str, session: int, reason: str, connected_ms: int | None, frames: int,
             detail: str) -> SessionEnd:
        end = SessionEnd(self.name, session, url, reason, connected_ms, self._clock.now_ms(), frames,
                         self._scrub(detail, url))
        self._status("stale" if reason == "stale" else "closed", f"{reason}: {end.detail}", session)
        return end

    def _notify_end(self, end: SessionEnd) -> None:
        if self.on_stale is None:
            return
        try:
            self.on_stale(end)
        except Exception:  # the callback's failure is its owner's bug; the stream carries on
            log.exception("stream_on_stale_failed", stream=self.name)

    def _close(self, ws: websocket.WebSocket, *, graceful: bool) -> None:
        try:
            if graceful and not self._stopping:
                ws.close(timeout=self._close_timeout_s)
            elif graceful:
                ws.close(timeout=min(self._close_timeout_s, 0.2))
        except (websocket.WebSocketException, OSError, ValueError):
            pass  # closing a broken socket: shutdown below is what matters
        ws.shutdown()

    def _sslopt(self, url: str) -> dict[str, Any]:
        if not url.startswith("wss:"):
            return {}
        opts: dict[str, Any] = {"cert_reqs": ssl.CERT_REQUIRED, "check_hostname": True}
        if self._ca_file:
            opts["ca_certs"] = self._ca_file
        return opts

    def _status(self, state: str, detail: str, session: int) -> None:
        self._set_state(state)
        log_fn = log.warning if state in ("stale", "closed") else log.info
        log_fn("stream_status", stream=self.name, state=state, session=session, detail=detail)
        self._emit(StreamStatus(self._clock.now_ms(), self.name, state, detail, session))

    def _set_state(self, state: str) -> None:
        self._state = state

    def _emit(self, event: Event) -> None:
        try:
            self._post(event)
        except Exception:  # a full or broken queue must not take the connection down
            log.exception("stream_post_failed", stream=self.name, event=type(event).__name__)

    def _redact(self, url: str) -> str:
        """The URL with the listen key replaced by its fingerprint (the key grants the stream)."""
        if self.name != "private":
            return url
        parts = urlsplit(url)
        path, _, key = parts.path.rpartition("/")
        return f"{parts.scheme}://{parts.netloc}{path}/{key_hint(unquote(key))}"

    def _scrub(self, text: str, url: str) -> str:
        if self.name == "private":
            key = urlsplit(url).path.rpartition("/")[2]
            if key:
                text = text.replace(url, self._redact(url)).replace(key, key_hint(unquote(key)))
                text = text.replace(unquote(key), key_hint(unquote(key)))
        return text

    @staticmethod
    def _describe(exc: BaseException) -> str:
        return f"{type(exc).__name__}: {exc}"[:300]
