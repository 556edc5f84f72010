"""Order calls on requests' own connection pool: send on one thread, read the answer on another.

Why not ``pool.urlopen``: the engine sends an accept right after its decision commits, on the
engine thread, and must not then wait a round trip for the answer (other RFQs' quotes are
queued behind it). ``urlopen`` does both halves in one call, so before this the accept went to a
REST worker first, a thread hand-over measured at ~0.26 ms p50 on the tick-to-accept path.
Here the two halves are apart: ``send`` writes the request and returns a ``SentRequest``,
whose ``read`` (on a worker) waits for the answer and gives the connection back to the pool.

The request is written as one ``sendall`` of bytes built here (``http.client`` writes the head
and the body in two, and its per-header calls cost ~0.1 ms on the engine thread); the answer is
read with the standard ``http.client.HTTPResponse``. The connection object itself is never
driven through its own request state machine, so it goes back to the pool idle and clean.

The pool is the one requests itself uses for the venue (same key), so order calls share its
warm connections with queries - an accept rarely pays a TLS handshake - and keep its TLS
settings (system/certifi CAs, ``venue.ca_file``). It is reached through urllib3's pool
methods ``_get_conn``/``_put_conn`` (stable through urllib3 1.x and 2.x; urllib3 is pinned
below 3 in pyproject.toml); tests/test_order_line.py pins the behaviour this relies on.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from typing import Any, Callable, Mapping
from urllib.parse import urlsplit

import urllib3

# What a failed send or read raises here: the request may or may not have reached the venue.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (urllib3.exceptions.HTTPError, http.client.HTTPException,
                                                     OSError)


class ReadTimeout(TimeoutError):
    """The request went out and no answer came within ``venue.read_timeout_s``."""


class SendFailed(Exception):
    """No usable answer; whether the venue got the request is not known. ``cause`` is the
    original exception (the caller words it for the user)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    content_type: str | None
    retry_after: str | None


class OrderLine:
    """Order-call transport over a urllib3 connection pool."""

    def __init__(self, pool: Callable[[], Any], base_url: str, headers: Mapping[str, str],
                 connect_timeout_s: float, read_timeout_s: float) -> None:
        self._lookup = pool
        self._pool: Any = None
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        parts = urlsplit(base_url)
        host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else (parts.hostname or "")
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        # A base URL with a path (a gateway prefix) prefixes every request, as requests does.
        self._prefix = parts.path.rstrip("/")
        fixed = {"Host": host, **headers, "Accept-Encoding": "identity"}
        self._fixed_head = _header_lines(fixed)

    def pool(self) -> Any:
        """requests' pool for the venue, looked up again only once it was closed or replaced."""
        pool = self._pool
        if pool is None or pool.pool is None:
            pool = self._pool = self._lookup()
        return pool

    def take_warm(self) -> Any | None:
        """A pooled connection that is open and not dropped by the venue, or None (nothing
        taken): opening one would mean a TCP + TLS handshake on the calling thread."""
        pool = self.pool()
        conn = pool._get_conn()   # closes a pooled connection the venue dropped (one poll)
        if conn.sock is not None:
            return conn
        pool._put_conn(conn)
        return None

    def take(self) -> Any:
        """A pooled connection, opened here when none is warm (handshake failures raise
        ``SendFailed``: nothing was sent)."""
        pool = self.pool()
        conn = pool._get_conn()
        if conn.is_closed:
            conn.timeout = self._connect_timeout_s
            try:
                conn.connect()
            except TRANSPORT_ERRORS as exc:
                conn.close()
                pool._put_conn(conn)
                raise SendFailed(exc) from None
        return conn

    def give_back(self, conn: Any) -> None:
        """Return an unused connection (taken, then not sent on)."""
        self.pool()._put_conn(conn)

    def encode(self, method: str, target: str, body: bytes | None, headers: Mapping[str, str]) -> bytes:
        """The request's bytes. Raises ``ValueError``/``UnicodeEncodeError`` for a request that
        cannot be written (a CR/LF or a non-Latin-1 character in a header or the target)."""
        body = body or b""
        target = self._prefix + target
        if "\n" in target or "\r" in target:
            raise ValueError("a request target may not contain CR or LF")
        head = f"{method} {target} HTTP/1.1\r\n{self._fixed_head}{_header_lines(headers)}"
        if body or method in ("POST", "PUT"):
            head += f"Content-Length: {len(body)}\r\n"
        return head.encode("latin-1") + b"\r\n" + body

    def send(self, conn: Any, method: str, data: bytes, write_timeout_s: float | None = None) -> "SentRequest":
        """Write ``data`` (from ``encode``) on ``conn`` in one piece. Never raises: a failed write
        is kept in the result and raised by ``read`` (some of the request may have left).

        ``write_timeout_s`` bounds the write (default ``venue.connect_timeout_s``): a few hundred
        bytes fit any socket buffer at once, so it only matters when the venue stopped reading,
        and the engine thread passes a short one rather than stall every other RFQ that long.
        """
        error: BaseException | None = None
        try:
            conn.sock.settimeout(self._connect_timeout_s if write_timeout_s is None else write_timeout_s)
            conn.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the venue may have answered and closed: the answer can still be read, as urllib3 does
        except TRANSPORT_ERRORS as exc:
            error = exc
        return SentRequest(self, self.pool(), conn, method, error)


def _header_lines(headers: Mapping[str, str]) -> str:
    """``Name: value\r\n`` lines; a CR or LF in a value would end the head early (injection)."""
    lines = []
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"header {name!r} contains CR or LF")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines)


class SentRequest:
    """One order request on the wire; ``read`` exactly once, on any thread."""

    def __init__(self, line: OrderLine, pool: Any, conn: Any, method: str, error: BaseException | None) -> None:
        self._line = line
        self._pool = pool   # the connection goes back where it came from, even if requests replaced it
        self._conn = conn
        self._method = method
        self._error = error

    def read(self) -> Answer:
        """Wait for the answer (venue.read_timeout_s) and free the connection; ``SendFailed``
        when the write failed or no complete answer came."""
        conn, self._conn = self._conn, None
        if conn is None:
            raise RuntimeError("SentRequest.read() called twice")
        pool = self._pool
        try:
            if self._error is not None:
                raise SendFailed(self._error)
            try:
                conn.sock.settimeout(self._line._read_timeout_s)
                response = http.client.HTTPResponse(conn.sock, method=self._method)
                response.begin()
                data = response.read()
            except TimeoutError:
                raise SendFailed(ReadTimeout(f"no answer within venue.read_timeout_s "
                                             f"({self._line._read_timeout_s:g} s)")) from None
            except TRANSPORT_ERRORS as exc:
                raise SendFailed(exc) from None
        except BaseException:
            conn.close()   # half a conversation: the connection cannot be reused
            pool._put_conn(conn)
            raise
        if response.will_close:
            conn.close()   # the venue said Connection: close; the pool reopens it when next taken
        pool._put_conn(conn)
        return Answer(response.status, data, response.getheader("Content-Type"), response.getheader("Retry-After"))
