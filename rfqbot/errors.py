"""Error classes a caller can act on. Each message says what happened and what to do."""

from __future__ import annotations

import math

EX_CONFIG = 78  # sysexits.h EX_CONFIG: systemd's RestartPreventExitStatus keys on it


class RfqbotError(Exception):
    """Base of every error rfqbot raises on purpose."""


class ConfigError(RfqbotError):
    """A configuration problem: names the file, the key path, the YAML line where known."""

    exit_code = EX_CONFIG

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None,
                 line: int | None = None) -> None:
        self.file = file
        self.key = key
        self.line = line
        self.detail = message
        where = []
        if file:
            where.append(f"{file}:{line}" if line else file)
        if key:
            where.append(key)
        super().__init__(f"{': '.join(where)}: {message}" if where else message)


class VenueError(RfqbotError):
    """The venue answered with a documented error (4xx with ``{"code", "msg"}``).

    ``code`` is always text (``"0001"``, ``"-1021"``): the venue sends both strings with leading
    zeros and negative numbers, and comparing them as text keeps ``"0001"`` distinct from ``1``.
    """

    def __init__(self, code: str, message: str, http_status: int | None = None,
                 endpoint: str = "") -> None:
        self.code = code
        self.message = message
        self.http_status = http_status
        self.endpoint = endpoint
        super().__init__(f"{endpoint}: venue error {code} (HTTP {http_status}): {message}")


class RateLimited(RfqbotError):
    """HTTP 429: every request to this venue pauses until ``retry_after_s`` has passed.

    The message speaks for a long-running process (the daemon's logs); a one-shot command
    says ``cli_message()`` instead, since nothing of it is still running to pause.
    """

    def __init__(self, retry_after_s: float, endpoint: str = "") -> None:
        self.retry_after_s = retry_after_s
        self.endpoint = endpoint
        super().__init__(f"{endpoint}: rate limited by the venue (HTTP 429); all requests pause "
                         f"for {retry_after_s:.0f} s")

    def cli_message(self) -> str:
        """What a one-shot command tells its user: how long to wait before the next one."""
        return f"rate limited: wait {math.ceil(self.retry_after_s)} s before the next command"


class Banned(RfqbotError):
    """HTTP 418: the venue blocked this IP after a 429. Nothing more is sent; a human must act."""

    def __init__(self, endpoint: str = "", detail: str = "") -> None:
        self.endpoint = endpoint
        super().__init__(f"{endpoint}: the venue banned this IP (HTTP 418) {detail}".rstrip()
                         + "; rfqbot has stopped sending requests. Check request rates, wait for "
                           "the ban to lapse, then restart.")


class OutcomeUnknown(RfqbotError):
    """A state-changing call (create, accept, decline) may or may not have happened.

    HTTP 5xx, a timeout or a broken connection after the request left. Never retried
    automatically: the journal records it and reconciliation asks the venue what happened.
    """

    def __init__(self, endpoint: str, reason: str, *, client_order_id: str | None = None) -> None:
        self.endpoint = endpoint
        self.reason = reason
        # create-rfq: the id to look the RFQ up by, since the venue's rfqId never came back
        self.client_order_id = client_order_id
        super().__init__(f"{self._what()}; not retried, will reconcile from the venue's RFQ history")

    def _what(self) -> str:
        about = f" of client order id {self.client_order_id}" if self.client_order_id else ""
        return f"{self.endpoint}: outcome{about} unknown ({self.reason})"

    def cli_message(self) -> str:
        """A one-shot command reconciles nothing: tell the user how to look it up."""
        check = (f"rfqbot rfq list --client-id {self.client_order_id}" if self.client_order_id
                 else "rfqbot rfq list --since 1h")
        return f"{self._what()}; not retried. Check with: {check}"


class NotSent(RfqbotError, ValueError):
    """A request refused BEFORE it left (bad argument): the venue never saw it.

    The only failure of a state-changing call that proves nothing happened at the venue
    without the venue saying so. A ``ValueError`` too, so callers that caught the plain
    ``ValueError`` it replaces still do.
    """


class TransportError(RfqbotError):
    """A query (no state change) failed after its retries: network, TLS, 5xx, or bad JSON."""

    def __init__(self, endpoint: str, reason: str) -> None:
        self.endpoint = endpoint
        self.reason = reason
        super().__init__(f"{endpoint}: {reason}")
