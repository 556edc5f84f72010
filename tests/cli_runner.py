"""Run ``rfqbot`` in-process for CLI tests: exit code, stdout, stderr."""

from __future__ import annotations

import pytest
import structlog

from rfqbot.cli import main


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``main(argv)``, then the captured output; structlog reset so one command's logging set-up
    never leaks into the next test."""
    try:
        code = main(list(argv))
    finally:
        structlog.reset_defaults()
    out, err = capsys.readouterr()
    return code, out, err
