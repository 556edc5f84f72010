"""Logging: JSON lines vs console, and the redaction processor on captured output."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from rfqbot.logs import configure_logging, forget_secrets, redact_value, register_secret


class TtyStream(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _clean_secrets():
    forget_secrets()
    yield
    forget_secrets()
    structlog.reset_defaults()


def test_json_lines_when_not_a_terminal() -> None:
    stream = io.StringIO()
    configure_logging("info", "auto", stream=stream)
    structlog.get_logger("t").info("hello", n=1)
    record = json.loads(stream.getvalue().strip())
    assert record["event"] == "hello" and record["n"] == 1 and record["level"] == "info" and "timestamp" in record


def test_console_when_a_terminal() -> None:
    stream = TtyStream()
    configure_logging("info", "auto", stream=stream)
    structlog.get_logger("t").info("hello", n=1)
    out = stream.getvalue()
    assert "hello" in out and "n=1" in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


def test_level_filters() -> None:
    stream = io.StringIO()
    configure_logging("warning", "json", stream=stream)
    log = structlog.get_logger("t")
    log.info("quiet")
    log.warning("loud")
    assert "quiet" not in stream.getvalue() and "loud" in stream.getvalue()


@pytest.mark.parametrize("key", ["signature", "api_key", "apiKey", "secret", "api_secret", "listenKey",
                                 "X-HK-APIKEY", "x-api-sign", "password", "token"])
def test_sensitive_keys_are_masked(key: str) -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    structlog.get_logger("t").info("call", **{key: "VALUE-THAT-MUST-NOT-SHOW"})
    out = stream.getvalue()
    assert "VALUE-THAT-MUST-NOT-SHOW" not in out and json.loads(out)[key] == "***"


def test_names_of_secrets_are_not_masked() -> None:
    assert redact_value({"api_key_env": "RFQBOT_API_KEY", "listen_key": {"extend_every_s": 1800}}) == \
        {"api_key_env": "RFQBOT_API_KEY", "listen_key": {"extend_every_s": 1800}}


def test_registered_secret_masked_inside_any_string_and_nested_values() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    register_secret("s3cr3t-Value-42")
    structlog.get_logger("t").info("url was https://x/?k=s3cr3t-Value-42&a=1",
                                   detail={"headers": ["Bearer s3cr3t-Value-42"]})
    out = stream.getvalue()
    assert "s3cr3t-Value-42" not in out
    record = json.loads(out)
    assert record["event"] == "url was https://x/?k=***&a=1" and record["detail"] == {"headers": ["Bearer ***"]}


def test_secret_in_exception_text_is_masked() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream=stream)
    register_secret("topsecret-xyz")
    try:
        raise RuntimeError("failed with topsecret-xyz")
    except RuntimeError:
        structlog.get_logger("t").exception("boom")
    out = stream.getvalue()
    assert "RuntimeError" in out and "topsecret-xyz" not in out


def test_console_output_is_redacted_too() -> None:
    stream = TtyStream()
    configure_logging("info", "auto", stream=stream)
    register_secret("abcdef-secret")
    structlog.get_logger("t").info("x abcdef-secret", signature="deadbeef")
    assert "abcdef-secret" not in stream.getvalue() and "deadbeef" not in stream.getvalue()


def test_bad_level_or_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("loud", "json")
    with pytest.raises(ValueError, match="unknown log format"):
        configure_logging("info", "xml")


@pytest.mark.parametrize("key", ["listen_key_failures", "design", "assign", "tokens_used", "api_key_env",
                                 "api_key_header", "key_hint", "failed_key", "signed", "secretary"])
def test_keys_that_only_sound_secret_are_shown(key: str) -> None:
    assert redact_value({key: "visible"}) == {key: "visible"}


@pytest.mark.parametrize("key", ["my_api_key", "webhook_token", "X-API-KEY", "LISTEN_KEY", "listen-key",
                                 "desk_b_api_secret", "refreshToken", "sign"])
def test_compound_and_other_spellings_of_secret_keys_are_masked(key: str) -> None:
    assert redact_value({key: "hide-me"}) == {key: "***"}


def test_bools_and_numbers_are_never_masked() -> None:
    assert redact_value({"token": True, "secret": 0, "listen_key_failures": 3, "signature": None}) == \
        {"token": True, "secret": 0, "listen_key_failures": 3, "signature": None}


def test_logs_and_config_checks_share_one_definition() -> None:
    from rfqbot.config import checks as config_checks
    from rfqbot import logs
    from rfqbot.secret_names import is_secret_key

    assert logs.is_secret_key is is_secret_key and config_checks.is_secret_key is is_secret_key
