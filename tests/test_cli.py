"""CLI commands run through main([...]) against the scripted venue; output and exit codes."""

from __future__ import annotations

import itertools
import json
import re
import sys
import types

import pytest

from rfqbot.cli import main
from tests.fakevenue import API_SECRET, FakeVenue, venue  # noqa: F401
from tests.cli_runner import config, run_cli  # noqa: F401 (config is a fixture)


run = run_cli


def test_pairs_table(config: str, capsys) -> None:
    code, out, err = run(capsys, "pairs", "--config", config)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["PAIR", "STATUS"]
    assert lines[2].split()[:4] == ["BTC/USDT", "OPENED", "0.001", "10000000"]


def test_pairs_json_keeps_exact_decimals(config: str, capsys, venue: FakeVenue) -> None:
    code, out, _ = run(capsys, "--json", "pairs", "--config", config)
    assert code == 0
    data = json.loads(out)
    assert data[1]["base"] == "BTC" and data[1]["min_base"] == "0.001" and data[1]["base_precision"] == "0.00001"
    assert venue.calls()[0].signature_ok is True


def test_rfq_create(config: str, capsys, venue: FakeVenue) -> None:
    code, out, err = run(capsys, "rfq", "create", "--buy", "btc", "--sell", "USDT", "--sell-amount", "1000.10",
                         "--mode", "real-time", "--expire-sec", "900", "--client-id", "desk 1", "--config", config,
                         "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["rfq_id"] == "RFQ638459562162049024" and data["status"] == "new"
    params = venue.calls()[0].params
    assert (params["buyCcy"], params["sellAmount"], params["expireSec"], params["rfqClOrderId"]) == \
        ("BTC", "1000.10", "900", "desk 1")


@pytest.mark.parametrize("extra", [["--sell-amount", "abc"], ["--sell-amount", "-1"], ["--expire-sec", "60"],
                                   ["--mode", "slow"]])
def test_rfq_create_usage_errors_exit_2(config: str, capsys, venue: FakeVenue, extra: list[str]) -> None:
    argv = {"--buy": "BTC", "--sell": "USDT", "--sell-amount": "5", "--mode": "real-time"}
    argv.update(dict(zip(extra[::2], extra[1::2])))
    code, _, err = run(capsys, "rfq", "create", *itertools.chain(*argv.items()), "--config", config)
    assert code == 2 and "error" in err
    assert venue.calls() == []


def test_rfq_create_outcome_unknown_exits_1_with_hint(config: str, capsys, venue: FakeVenue) -> None:
    venue.script("POST", "/api/v1/market-place/create-rfq", 503, {})
    code, out, err = run(capsys, "rfq", "create", "--buy", "BTC", "--sell", "USDT", "--sell-amount", "5",
                         "--mode", "delayed", "--config", config)
    assert code == 1 and out == ""
    [call] = venue.calls()
    sent = call.params["rfqClOrderId"]
    assert re.fullmatch(r"rfqbot-[0-9a-f]{20}", sent)
    assert err.startswith(f"rfqbot: error: /api/v1/market-place/create-rfq: outcome of client order id {sent} "
                          "unknown")
    assert err.rstrip().endswith(f"not retried. Check with: rfqbot rfq list --client-id {sent}")
    assert "will reconcile" not in err and "Traceback" not in err   # nothing of a one-shot command reconciles


def test_rfq_list_by_client_id_follows_up_an_unknown_outcome(config: str, capsys, venue: FakeVenue) -> None:
    code, _, err = run(capsys, "rfq", "list", "--client-id", "rfqbot-0123", "--config", config)
    assert code == 0, err
    assert venue.calls()[0].params["rfqClOrderId"] == "rfqbot-0123"


def test_rate_limit_message_is_for_a_one_shot_command(config: str, capsys, venue: FakeVenue) -> None:
    venue.script("GET", "/api/v1/market-place/get-pairs", 429, {"code": "-1003", "msg": "Too many requests"},
                 headers={"Retry-After": "7"})
    code, out, err = run(capsys, "pairs", "--config", config)
    assert code == 1 and out == ""
    assert err.strip() == "rfqbot: error: rate limited: wait 7 s before the next command"


@pytest.mark.parametrize("argv, message", [
    (["rfq", "quotes", ""], "argument RFQ_ID: RFQ_ID must not be empty"),
    (["rfq", "accept", " ", "Q1"], "argument RFQ_ID: RFQ_ID must not be empty"),
    (["rfq", "decline", "R1", ""], "argument QUOTE_ID: QUOTE_ID must not be empty"),
    (["rfq", "list", "--limit", "0"], "argument --limit: 0 is outside 1..1000 (the venue's page size)"),
    (["rfq", "list", "--limit", "1001"], "argument --limit: 1001 is outside 1..1000 (the venue's page size)"),
    (["rfq", "list", "--limit", "ten"], "argument --limit: 'ten' is not a whole number"),
    (["rfq", "list", "--since", "91d"], "argument --since: '91d' is more than the 90 days the venue keeps; use at "
                                        "most 90d"),
    (["rfq", "list", "--status", "done"], "argument --status: invalid choice: 'done' (choose from 'new', "
                                          "'accepted', 'processing', 'successful', 'expired', 'cancelled', "
                                          "'declined', 'manual-order', 'manual-order-confirmation', 'failed')"),
    (["rfq", "create", "--buy", "BTC", "--sell", "USDT", "--sell-amount", "5", "--mode", "delayed",
      "--client-id", ""], "argument --client-id: --client-id must not be empty"),
])
def test_client_side_validation_is_a_usage_error(config: str, capsys, venue: FakeVenue, argv: list[str],
                                                 message: str) -> None:
    code, out, err = run(capsys, *argv, "--config", config)
    assert code == 2 and out == "" and venue.calls() == []
    assert err.strip().splitlines()[-1].endswith(f"error: {message}")


def test_ninety_days_and_a_thousand_rows_are_allowed(config: str, capsys, venue: FakeVenue) -> None:
    code, _, err = run(capsys, "rfq", "list", "--since", "90d", "--limit", "1000", "--config", config)
    assert code == 0, err
    params = venue.calls()[0].params
    assert int(params["endTime"]) - int(params["startTime"]) == 90 * 86_400_000 and params["limit"] == "1000"


def test_rfq_list(config: str, capsys, venue: FakeVenue) -> None:
    code, out, err = run(capsys, "rfq", "list", "--status", "successful", "--since", "2h", "--config", config)
    assert code == 0, err
    assert "RFQ638459562162049024" in out and "successful" in out and "65000" in out
    params = venue.calls()[0].params
    assert int(params["endTime"]) - int(params["startTime"]) == 2 * 3600 * 1000
    assert params["status"] == "successful"


def test_rfq_list_bad_since_is_usage_error(config: str, capsys) -> None:
    code, _, err = run(capsys, "rfq", "list", "--since", "yesterday", "--config", config)
    assert code == 2 and "invalid duration 'yesterday'" in err


def test_rfq_quotes(config: str, capsys) -> None:
    code, out, _ = run(capsys, "rfq", "quotes", "MP740508620175265792", "--config", config, "--json")
    assert code == 0
    assert [q["price"] for q in json.loads(out)] == ["101000", "102000"]


def test_rfq_accept_and_decline(config: str, capsys, venue: FakeVenue) -> None:
    code, out, _ = run(capsys, "rfq", "accept", "rfq1", "quote1", "--config", config)
    assert code == 0 and "accepted" in out
    venue.script("POST", "/api/v1/market-place/accept-quote", 400, {"code": "-1020", "msg": "Unsupported operation"})
    code, out, err = run(capsys, "rfq", "decline", "rfq1", "quote1", "--config", config)
    assert code == 1 and out == ""
    assert err.strip() == ("rfqbot: error: /api/v1/market-place/accept-quote: venue error -1020 (HTTP 400): "
                           "Unsupported operation")
    assert [c.params["action"] for c in venue.calls()] == ["accept", "decline"]


def test_missing_credentials_exit_78(config: str, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RFQBOT_API_SECRET")
    code, _, err = run(capsys, "pairs", "--config", config)
    assert code == 78 and "RFQBOT_API_SECRET" in err and err.count("\n") == 1


def test_run_with_a_journal_path_it_cannot_open_exits_78_and_logs_the_true_stop_reason(
        config: str, capsys, tmp_path) -> None:
    """A journal that cannot be opened (here: the path is a folder) is not fixed by a restart:
    exit 78 (systemd's RestartPreventExitStatus) naming journal.path, not 1 and a restart loop."""
    folder = tmp_path / "journal-is-a-folder"
    folder.mkdir()
    with open(config, "a", encoding="utf-8") as out:
        out.write(f'journal:\n  path: "{folder}"\n')
    code, out, err = run(capsys, "run", "--config", config)
    assert code == 78
    assert "journal.path" in err and "cannot open journal" in err and err.count("rfqbot: error:") == 1
    assert '"reason": "start failed"' in out + err and '"reason": "finished"' not in out + err


def test_a_status_file_never_written_is_not_removed(tmp_path) -> None:
    """A start that failed before the first status write must not warn that removing it failed
    (on a read-only folder the unlink itself fails even for a missing file)."""
    from rfqbot.ops.status import remove_status_file

    class Unremovable(type(tmp_path)):  # type: ignore[misc]
        def unlink(self, missing_ok: bool = False) -> None:
            raise OSError(30, "Read-only file system")

    remove_status_file(Unremovable(tmp_path / "never-written.status.json"))


def test_check_config_ok_and_redacted(config: str, capsys) -> None:
    code, out, _ = run(capsys, "check-config", "--config", config)
    assert code == 0
    assert "valid" in out and "credentials: found (environment)" in out and API_SECRET not in out
    code, out, _ = run(capsys, "check-config", "--config", config, "--json")
    data = json.loads(out)
    assert data["valid"] is True and data["config"]["venue"]["name"] == "hashkey-sg-sandbox"


def test_check_config_masks_secrets_only(config: str, capsys) -> None:
    """Counts, bools and names of secrets stay readable; only real secrets would be masked."""
    with open(config, "a", encoding="utf-8") as out:
        out.write("alerts:\n  listen_key_failures: 4\n")
    code, out, _ = run(capsys, "check-config", "--config", config, "--json")
    data = json.loads(out)["config"]
    assert data["alerts"]["listen_key_failures"] == 4
    assert data["credentials"] == {"api_key_env": "RFQBOT_API_KEY", "api_secret_env": "RFQBOT_API_SECRET"}
    assert data["venue"]["api_key_header"] == "X-HK-APIKEY"
    assert "***" not in out


def test_check_config_invalid_exit_78(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("engine:\n  acept_workers: 2\n")
    code, out, err = run(capsys, "check-config", "--config", str(bad))
    assert code == 78 and out == ""
    assert err.strip() == (f"rfqbot: error: {bad}:2: engine.acept_workers: unknown key 'acept_workers'; "
                           "did you mean 'accept_workers'?")


def test_config_from_environment_variable(config: str, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RFQBOT_CONFIG", config)
    code, out, _ = run(capsys, "check-config")
    assert code == 0 and config in out


def test_usage_errors(capsys) -> None:
    assert run(capsys, "nonsense")[0] == 2
    assert run(capsys, "rfq")[0] == 2
    assert run(capsys, "rfq", "accept", "only-one")[0] == 2
    assert run(capsys, "--help")[0] == 0


def test_sim_passes_every_argument_through(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    fake = types.ModuleType("rfqbot.sim.cli")
    fake.main = lambda argv: seen.append(argv) or 3  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rfqbot.sim.cli", fake)
    assert main(["sim", "--port", "0", "--no-tls", "--config", "x.yaml"]) == 3
    assert seen == [["--port", "0", "--no-tls", "--config", "x.yaml"]]
