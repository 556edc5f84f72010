"""The notify protocol over a real unix datagram socket: paths, abstract names, watchdog env."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

from rfqbot.ops.sdnotify import SdNotifier, socket_address, watchdog_interval_s


def receiver(path: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2.0)
    return sock


def test_send_to_path_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    sock = receiver(path)
    notifier = SdNotifier.from_env({"NOTIFY_SOCKET": path})
    try:
        assert notifier is not None
        assert notifier.send("READY=1", "STATUS=all good\nsecond line") is True
        assert sock.recv(4096).decode() == "READY=1\nSTATUS=all good second line"
    finally:
        notifier.close()
        sock.close()


def test_send_to_abstract_socket() -> None:
    name = f"rfqbot-test-{uuid.uuid4().hex}"
    sock = receiver(b"\0" + name.encode())
    notifier = SdNotifier.from_env({"NOTIFY_SOCKET": "@" + name})
    try:
        assert notifier is not None and notifier.address == b"\0" + name.encode()
        notifier.send("WATCHDOG=1")
        assert sock.recv(4096) == b"WATCHDOG=1"
    finally:
        notifier.close()
        sock.close()


def test_no_socket_means_no_notifier() -> None:
    assert SdNotifier.from_env({}) is None
    assert SdNotifier.from_env({"NOTIFY_SOCKET": ""}) is None
    assert SdNotifier.from_env({"NOTIFY_SOCKET": "vsock:2:1234"}) is None


def test_send_failure_is_reported_not_raised(tmp_path: Path) -> None:
    notifier = SdNotifier(str(tmp_path / "nobody-listens.sock"))
    try:
        assert notifier.send("READY=1") is False
    finally:
        notifier.close()


def test_socket_address() -> None:
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"
    assert socket_address("@abc") == b"\0abc"


@pytest.mark.parametrize("env, expected", [
    ({}, None),
    ({"WATCHDOG_USEC": "30000000"}, 30.0),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "junk"}, None),
    ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}, 20.0),
    ({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
])
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval_s(env) == expected
