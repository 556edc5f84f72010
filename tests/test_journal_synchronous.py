"""``journal.synchronous``: full by default, normal on request, anything else refused."""

from __future__ import annotations

import pytest

from rfqbot.clock import FakeClock
from rfqbot.config.schema import JournalSettings
from rfqbot.errors import ConfigError
from rfqbot.journal.store import Journal, JournalError


@pytest.mark.parametrize(("setting", "pragma"), [("full", 2), ("normal", 1)])
def test_the_connection_runs_with_the_configured_synchronous_level(tmp_path, setting, pragma):
    journal = Journal(tmp_path / "j.db", FakeClock(), synchronous=setting)
    try:
        assert journal.query("PRAGMA synchronous") == [{"synchronous": pragma}]
        assert journal.query("PRAGMA journal_mode") == [{"journal_mode": "wal"}]
    finally:
        journal.close()


def test_full_is_the_default_and_other_words_are_refused(tmp_path):
    assert JournalSettings().synchronous == "full"
    assert JournalSettings(synchronous="normal").synchronous == "normal"
    with pytest.raises(ValueError):
        JournalSettings(synchronous="off")
    with pytest.raises(JournalError, match="full' or 'normal"):
        Journal(tmp_path / "j.db", FakeClock(), synchronous="off")


def test_the_config_file_key_reaches_the_settings():
    from rfqbot.config.schema import load_config_text

    text = 'journal:\n  path: "/tmp/x.db"\n  synchronous: normal\n'
    assert load_config_text(text, file="<test>").journal.synchronous == "normal"
    with pytest.raises(ConfigError, match="journal.synchronous"):
        load_config_text('journal:\n  synchronous: "off"\n', file="<test>")
