"""The systemd notify protocol, spoken over ``$NOTIFY_SOCKET`` directly.

It is one datagram of ``KEY=VALUE`` lines to a unix socket, so a dependency (python-systemd,
sdnotify) would add more than it saves. ``$NOTIFY_SOCKET`` may name a path or, starting with
``@``, a Linux abstract socket (the ``@`` becomes a leading NUL byte). Outside systemd the
variable is unset and ``SdNotifier.from_env`` returns None: callers then simply do not notify.

Sending never raises: a lost notification must not stop trading. systemd will notice what
matters (no READY within TimeoutStartSec, no WATCHDOG within WatchdogSec) on its own.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Mapping

import structlog

log = structlog.get_logger(__name__)


def socket_address(value: str) -> str | bytes:
    """The address to ``sendto`` for a ``$NOTIFY_SOCKET`` value (abstract names start with '@')."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode("utf-8")
    return value


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """``WatchdogSec=`` in seconds from ``$WATCHDOG_USEC``, or None when no watchdog applies.

    ``$WATCHDOG_PID``, when set, names the process the watchdog is meant for; a child that
    inherited the environment must not ping on its parent's behalf.
    """
    environ = os.environ if env is None else env
    raw = environ.get("WATCHDOG_USEC", "")
    if not raw.isdigit() or int(raw) <= 0:
        return None
    pid = environ.get("WATCHDOG_PID", "")
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(raw) / 1_000_000


class SdNotifier:
    """Sends notify messages to one socket. Thread-safe; ``send`` never raises."""

    def __init__(self, address: str | bytes) -> None:
        self.address = address
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "SdNotifier | None":
        """A notifier for ``$NOTIFY_SOCKET``, or None when not started by systemd with Type=notify."""
        environ = os.environ if env is None else env
        value = environ.get("NOTIFY_SOCKET", "")
        if not value or not (value.startswith("/") or value.startswith("@")):
            return None  # vsock and other transports are not used for services on one host
        return cls(socket_address(value))

    def send(self, *lines: str) -> bool:
        """Send ``lines`` (like ``"READY=1"``, ``"STATUS=..."``) as one datagram; True when sent."""
        text = "\n".join(line.replace("\n", " ") for line in lines)
        with self._lock:
            try:
                self._sock.sendto(text.encode("utf-8"), self.address)
            except OSError as exc:
                log.warning("sdnotify.send_failed", error=str(exc), message=text.split("\n")[0][:40])
                return False
        return True

    def close(self) -> None:
        with self._lock:
            self._sock.close()


__all__ = ["SdNotifier", "socket_address", "watchdog_interval_s"]
