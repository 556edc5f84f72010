"""Ctrl-C during an order-type command, and the last-resort handler of ``rfqbot`` (main()).

A Ctrl-C is simulated without signals: the venue call raises KeyboardInterrupt after the request
reached the scripted venue (its answer never read), which is what a real Ctrl-C mid-call leaves.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from rfqbot.errors import OutcomeUnknown
from rfqbot.logs import register_secret
from rfqbot.venue.rest import RestClient
from tests.cli_runner import config, run_cli  # noqa: F401 (config is a fixture)
from tests.fakevenue import FakeVenue, venue  # noqa: F401


def _interrupt_after_sending(monkeypatch: pytest.MonkeyPatch) -> None:
    """Order calls reach the venue, then Ctrl-C arrives while the answer is awaited."""
    send = RestClient._send_lean

    def send_then_interrupt(self: RestClient, *args: Any) -> Any:
        send(self, *args)
        raise KeyboardInterrupt

    monkeypatch.setattr(RestClient, "_send_lean", send_then_interrupt)


def test_ctrl_c_during_create_says_the_outcome_is_unknown_and_how_to_check(
        config: str, capsys, venue: FakeVenue, monkeypatch: pytest.MonkeyPatch) -> None:
    _interrupt_after_sending(monkeypatch)
    code, out, err = run_cli(capsys, "rfq", "create", "--buy", "BTC", "--sell", "USDT", "--sell-amount", "5",
                             "--mode", "delayed", "--config", config)
    assert code == 130 and out == ""
    [call] = venue.calls()   # it did reach the venue
    sent = call.params["rfqClOrderId"]
    expected = OutcomeUnknown("/api/v1/market-place/create-rfq", "interrupted", client_order_id=sent).cli_message()
    assert err.strip() == f"rfqbot: error: {expected}"
    assert err.rstrip().endswith(f"not retried. Check with: rfqbot rfq list --client-id {sent}")
    assert "Traceback" not in err


@pytest.mark.parametrize("answer", ["accept", "decline"])
def test_ctrl_c_during_accept_or_decline_gives_the_accept_timeout_hint(
        config: str, capsys, venue: FakeVenue, monkeypatch: pytest.MonkeyPatch, answer: str) -> None:
    venue.script("POST", "/api/v1/market-place/accept-quote", 503, {})
    code, _, timeout_err = run_cli(capsys, "rfq", answer, "rfq1", "quote1", "--config", config)
    assert code == 1
    _interrupt_after_sending(monkeypatch)
    code, out, err = run_cli(capsys, "rfq", answer, "rfq1", "quote1", "--config", config)
    assert code == 130 and out == ""
    assert [c.params["action"] for c in venue.calls()] == [answer, answer]
    # The same check hint as for a 5xx/timeout: the wording lives in one place.
    hint = timeout_err.strip().split("; not retried. ", 1)[1]
    assert err.strip() == ("rfqbot: error: /api/v1/market-place/accept-quote: outcome unknown (interrupted); "
                           f"not retried. {hint}")
    assert hint == "Check with: rfqbot rfq list --since 1h"


def test_ctrl_c_outside_an_order_call_is_just_interrupted(config: str, capsys, venue: FakeVenue,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_args: Any, **_kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(RestClient, "request", interrupted)
    code, out, err = run_cli(capsys, "rfq", "list", "--config", config)
    assert (code, out, err.strip()) == (130, "", "rfqbot: error: interrupted")


# --- the last-resort handler ------------------------------------------------------------------

def _crash_with(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    def crash(*_args: Any, **_kwargs: Any) -> Any:
        raise exc

    monkeypatch.setattr("rfqbot.cli.market_cmds.cmd_pairs", crash)


def test_an_unexpected_exception_is_one_line_naming_a_bug(config: str, capsys,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _crash_with(monkeypatch, ZeroDivisionError("division by zero\nsecond line"))
    code, out, err = run_cli(capsys, "pairs", "--config", config)
    assert code == 1 and out == ""
    assert err.splitlines() == ["rfqbot: error: ZeroDivisionError: division by zero (a bug: please report it "
                                "with the command you ran; -v shows the traceback)"]


def test_verbose_shows_the_traceback_too(config: str, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    _crash_with(monkeypatch, KeyError("missing"))
    code, _, err = run_cli(capsys, "pairs", "-v", "--config", config)
    assert code == 1
    assert err.startswith("Traceback (most recent call last):")
    assert err.splitlines()[-1] == ("rfqbot: error: KeyError: 'missing' (a bug: please report it with the command "
                                    "you ran; the traceback is above)")


def test_the_daemon_always_writes_a_crash_traceback(config: str, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """`rfqbot run` under systemd is never re-run with -v: the traceback must reach journald at once."""
    def crash(self: Any) -> None:
        raise RuntimeError("engine wiring bug")

    monkeypatch.setattr("rfqbot.daemon.Daemon.start", crash)
    code, _, err = run_cli(capsys, "run", "--config", config)
    assert code == 1
    assert "Traceback (most recent call last):" in err and "RuntimeError: engine wiring bug" in err
    assert err.splitlines()[-1].endswith("(a bug: please report it with the command you ran; the traceback is above)")


def test_the_line_and_the_traceback_never_hold_a_secret(config: str, capsys,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    register_secret("registered-api-secret-value")
    _crash_with(monkeypatch, RuntimeError("POST https://venue/x?timestamp=1&signature=abcdef0123456789 with "
                                          "registered-api-secret-value, listenKey: lk-123456"))
    for verbose in ([], ["-v"]):
        code, _, err = run_cli(capsys, "pairs", *verbose, "--config", config)
        assert code == 1
        for secret in ("registered-api-secret-value", "abcdef0123456789", "lk-123456"):
            assert secret not in err
        assert re.search(r"timestamp=1&signature=\*\*\* with \*\*\*, listenKey: \*\*\*", err.splitlines()[-1])


def test_an_os_error_names_its_file_and_is_not_called_a_bug(config: str, capsys,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _crash_with(monkeypatch, PermissionError(13, "Permission denied", "/srv/out.csv"))
    code, _, err = run_cli(capsys, "pairs", "--config", config)
    assert code == 1
    assert err.splitlines() == ["rfqbot: error: PermissionError: [Errno 13] Permission denied: '/srv/out.csv'"]
