"""``rfqbot demo --journal``: an existing file other than the default is refused unless --resume."""

from __future__ import annotations

import pytest

from rfqbot.cli import main


def test_existing_non_default_journal_is_refused_and_kept(tmp_path, capsys):
    journal = tmp_path / "desk.db"
    journal.write_bytes(b"precious")
    assert main(["demo", "--duration", "1", "--journal", str(journal)]) == 2
    assert journal.read_bytes() == b"precious"
    err = capsys.readouterr().err
    assert "already exists" in err and "--resume" in err


def test_resume_skips_the_refusal(tmp_path, monkeypatch):
    import rfqbot.sim as sim_module

    class Stop(Exception):
        pass

    reached = []

    def no_sim(*args, **kwargs):
        reached.append(True)
        raise Stop  # past the journal check: the demo would start the simulator here

    monkeypatch.setattr(sim_module, "Simulator", no_sim)
    journal = tmp_path / "desk.db"
    journal.write_bytes(b"precious")
    # Stop reaches main()'s last-resort handler: one line, exit 1, no traceback.
    assert main(["demo", "--duration", "1", "--journal", str(journal), "--resume"]) == 1
    assert reached == [True]
    assert journal.read_bytes() == b"precious"
