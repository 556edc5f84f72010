"""Run ``rfqbot`` in-process for CLI tests: exit code, stdout, stderr."""

from __future__ import annotations

import itertools
from typing import Iterator

import pytest
import structlog

from rfqbot.cli import main
from rfqbot.logs import forget_secrets
from tests.fakevenue import API_SECRET, FakeVenue

_keys = itertools.count()


@pytest.fixture
def config(venue: FakeVenue, tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A config file for the scripted ``venue``, credentials in the environment."""
    # A fresh API key per test: pacing is shared per key, and tests must not wait on each other.
    monkeypatch.setenv("RFQBOT_API_KEY", f"cli-test-key-{next(_keys)}")
    monkeypatch.setenv("RFQBOT_API_SECRET", API_SECRET)
    monkeypatch.delenv("RFQBOT_CONFIG", raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    path = tmp_path / "config.yaml"
    path.write_text(f"venue:\n  name: hashkey-sg-sandbox\n  rest_url: {venue.url}\nlogging:\n  format: json\n")
    yield str(path)
    structlog.reset_defaults()
    forget_secrets()


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``main(argv)``, then the captured output; structlog reset so one command's logging set-up
    never leaks into the next test."""
    try:
        code = main(list(argv))
    finally:
        structlog.reset_defaults()
    out, err = capsys.readouterr()
    return code, out, err
