"""``rfqbot journal ...`` on a journal written by the real daemon against the simulator.

One session-scoped run (a few seconds of simulated market: BTC and ETH RFQs that fill, USDC RFQs
that never do, spot references) feeds every command test; tests copy the file before changing it.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import structlog

from rfqbot.config.schema import load_config_text
from rfqbot.config.credentials import Credentials
from rfqbot.daemon import Daemon
from rfqbot.journal.store import Journal, row_hash
from rfqbot.clock import FakeClock, SystemClock
from rfqbot.sim import SimConfig, Simulator
from tests.readme import readme_section
from tests.cli_runner import run_cli

CONFIG = """
venue:
  name: simulator
  rest_url: "{rest_url}"
  ws_url: "{ws_url}"
journal:
  path: "{journal}"
logging:
  level: warning
  format: json
streams:
  spot_symbols: [BTCUSDT, ETHUSDT]
reconcile:
  every_s: 5
strategies:
  BTC/USDT:
    - use: price_limit
      limit_price: "106400"
  ETH/USDT:
    - use: price_limit
      limit_price: "3790"
  USDC/USD:
    - use: price_limit
      limit_price: "0.9990"
rfqs:
  - every: 1s
    buy: BTC
    sell: USDT
    sell_amount: "5000"
    mode: real-time
    client_id_prefix: t-btc
  - every: 2s
    buy: USDT
    sell: ETH
    sell_amount: "0.8"
    mode: real-time
    client_id_prefix: t-eth
  - every: 2s
    buy: USDC
    sell: USD
    sell_amount: "2000"
    mode: real-time
    client_id_prefix: t-usdc
risk:
  max_accepts_per_minute: 60
  max_open_rfqs: 50
"""


def _count(path: Path, sql: str) -> int:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        conn.close()


@pytest.fixture(scope="session")
def sim_journal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("simrun") / "journal.db"
    sim = Simulator(SimConfig(seed=11, tls=False, reference_tick_s=0.5)).start()
    try:
        settings = load_config_text(CONFIG.format(rest_url=sim.rest_url, ws_url=sim.ws_url, journal=path),
                                    file="<test>")
        daemon = Daemon(settings, Credentials(sim.api_key, sim.api_secret, source="simulator"))
        daemon.start()
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                settled = _count(path, "SELECT COUNT(*) FROM rfqs WHERE status = 'successful'")
                usdc = _count(path, "SELECT COUNT(*) FROM decisions d JOIN rfqs r USING (rfq_id) "
                                    "WHERE r.pair = 'USDC/USD'")
                if settled >= 3 and usdc >= 1:
                    break
                time.sleep(0.2)
        finally:
            daemon.stop("test finished")
    finally:
        sim.stop()
        structlog.reset_defaults()
    return path


@pytest.fixture
def journal_copy(sim_journal: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy.db"
    shutil.copy(sim_journal, target)
    return target


run = run_cli


def test_the_run_produced_an_auditable_journal(sim_journal: Path) -> None:
    assert _count(sim_journal, "SELECT COUNT(*) FROM rfqs WHERE status = 'successful'") >= 3
    assert _count(sim_journal, "SELECT COUNT(*) FROM reference_prices") > 0
    assert _count(sim_journal, "SELECT COUNT(*) FROM fills WHERE reference_price IS NOT NULL") >= 1


def _own_rfqs(path: Path) -> list[dict]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM rfqs WHERE own = 1 ORDER BY first_seq")]
    finally:
        conn.close()


# --- list ---------------------------------------------------------------------------------------

def test_list_table_and_filters(sim_journal: Path, capsys) -> None:
    code, out, err = run(capsys, "journal", "list", "--journal", str(sim_journal))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["RFQ", "ID", "CREATED", "PAIR"]
    assert len(lines) - 1 == len(_own_rfqs(sim_journal))
    code, out, _ = run(capsys, "journal", "list", "--status", "filled", "--json", "--journal", str(sim_journal))
    filled = json.loads(out)
    assert code == 0 and filled and {r["status"] for r in filled} <= {"successful", "accepted", "processing"}
    code, out, _ = run(capsys, "journal", "list", "--status", "open", "--json", "--journal", str(sim_journal))
    still_open = json.loads(out)
    assert code == 0 and still_open and not {r["status"] for r in still_open} & {"successful", "expired", "failed"}
    code, out, _ = run(capsys, "journal", "list", "--pair", "usdcusd", "--json", "--journal", str(sim_journal))
    usdc = json.loads(out)
    assert usdc and {r["pair"] for r in usdc} == {"USDC/USD"} and all(r["accept_state"] == "none" for r in usdc)
    code, out, _ = run(capsys, "journal", "list", "--since", "2099-01-01", "--journal", str(sim_journal))
    assert code == 0 and out.strip() == "(no RFQs match)"


def test_list_json_keeps_exact_decimals(sim_journal: Path, capsys) -> None:
    code, out, _ = run(capsys, "journal", "list", "--status", "successful", "--json", "--journal", str(sim_journal))
    rows = json.loads(out)
    assert code == 0 and rows
    for row in rows:
        assert isinstance(row["price"], str) and "e" not in row["price"].lower()
        assert isinstance(row["created_ms"], int) and row["lp_name"]


def test_bad_since_is_a_usage_error(sim_journal: Path, capsys) -> None:
    code, _, err = run(capsys, "journal", "list", "--since", "yesterday-ish", "--journal", str(sim_journal))
    assert code == 2 and "30m, 2h, 7d" in err


def test_default_journal_comes_from_the_config(sim_journal: Path, tmp_path: Path, capsys) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"journal:\n  path: {sim_journal}\n")
    code, out, err = run(capsys, "journal", "list", "--config", str(config), "--json")
    assert code == 0, err
    assert len(json.loads(out)) == len(_own_rfqs(sim_journal))


def test_missing_journal_says_what_to_do(tmp_path: Path, capsys) -> None:
    code, _, err = run(capsys, "journal", "list", "--journal", str(tmp_path / "nope.db"))
    assert code == 1 and "does not exist" in err and "--journal PATH" in err
    assert not (tmp_path / "nope.db").exists()


# --- show ---------------------------------------------------------------------------------------

def test_show_filled_rfq_has_timeline_quotes_verdicts_and_calls(sim_journal: Path, capsys) -> None:
    filled = next(r for r in _own_rfqs(sim_journal) if r["status"] == "successful")
    code, out, err = run(capsys, "journal", "show", filled["rfq_id"], "--journal", str(sim_journal))
    assert code == 0, err
    assert out.startswith(f"RFQ {filled['rfq_id']}")
    timeline = out.split("TIMELINE")[1].split("QUOTES")[0]
    assert "\n+0 " in timeline and "create.requested" in timeline and "decision" in timeline
    assert "-> successful" in timeline
    assert filled["accepted_quote_id"] in out.split("QUOTES")[1].split("DECISIONS")[0]
    decisions = out.split("DECISIONS")[1].split("VENUE CALLS")[0]
    assert "accept " + filled["accepted_quote_id"] in decisions and "step 0 price_limit: allow" in decisions
    assert "venue answer: accepted" in decisions
    calls = out.split("VENUE CALLS")[1]
    assert "/api/v1/market-place/create-rfq" in calls and "/api/v1/market-place/accept-quote" in calls


def test_show_json_relative_times_and_client_id_lookup(sim_journal: Path, capsys) -> None:
    filled = next(r for r in _own_rfqs(sim_journal) if r["status"] == "successful")
    code, out, _ = run(capsys, "journal", "show", filled["client_order_id"], "--json", "--journal", str(sim_journal))
    data = json.loads(out)
    assert code == 0 and data["rfq"]["rfq_id"] == filled["rfq_id"]
    rel = [t["rel_ms"] for t in data["timeline"]]
    assert rel[0] == 0 and all(isinstance(v, int) and v >= 0 for v in rel)
    assert [t["seq"] for t in data["timeline"]] == sorted(t["seq"] for t in data["timeline"])
    accept = [d for d in data["decisions"] if d["action"] == "accept"]
    assert len(accept) == 1 and accept[0]["verdicts"][0]["use"] == "price_limit"
    assert accept[0]["result_outcome"] == "accepted" and accept[0]["rel_ms"] >= 0
    assert {c["params"].get("rfqId") for c in data["venue_calls"]} >= {filled["rfq_id"]}


def test_show_a_never_filled_rfq_explains_why(sim_journal: Path, capsys) -> None:
    usdc = next(r for r in _own_rfqs(sim_journal) if r["pair"] == "USDC/USD" and r["accept_state"] == "none")
    code, out, _ = run(capsys, "journal", "show", usdc["rfq_id"], "--json", "--journal", str(sim_journal))
    decisions = json.loads(out)["decisions"]
    assert code == 0 and decisions and all(d["action"] == "none" for d in decisions)
    assert all("0.9990" in d["verdicts"][0]["reason"] for d in decisions)


def test_show_unknown_rfq_exits_1(sim_journal: Path, capsys) -> None:
    code, out, err = run(capsys, "journal", "show", "MP-NOPE", "--journal", str(sim_journal))
    assert code == 1 and out == "" and "journal list" in err


# --- tail ---------------------------------------------------------------------------------------

def test_tail_prints_the_last_events(sim_journal: Path, capsys) -> None:
    head = _count(sim_journal, "SELECT MAX(seq) FROM events")
    code, out, _ = run(capsys, "journal", "tail", "-n", "3", "--journal", str(sim_journal))
    assert code == 0
    assert [int(line.split()[0]) for line in out.splitlines()] == [head - 2, head - 1, head]


def test_tail_follow_sees_events_written_while_it_runs(journal_copy: Path, capsys) -> None:
    start = _count(journal_copy, "SELECT MAX(seq) FROM events")
    writer = Journal(journal_copy, SystemClock())
    appended: list[int] = []

    def write() -> None:
        time.sleep(0.3)
        for i in range(3):
            appended.append(writer.append("note.test", source="test", payload={"i": i}))

    thread = threading.Thread(target=write)
    thread.start()
    try:
        code, out, _ = run(capsys, "journal", "tail", "-n", "1", "-f", "--for", "1.5", "--poll", "0.05", "--json",
                           "--journal", str(journal_copy))
    finally:
        thread.join(5)
        writer.close()
    seqs = [json.loads(line)["seq"] for line in out.splitlines()]
    assert code == 0 and appended == [start + 1, start + 2, start + 3]
    assert seqs == [start] + appended


# --- export -------------------------------------------------------------------------------------

def test_export_jsonl_holds_exactly_what_was_hashed(sim_journal: Path, capsys) -> None:
    code, out, _ = run(capsys, "journal", "export", "--format", "jsonl", "--journal", str(sim_journal))
    lines = out.splitlines()
    assert code == 0 and len(lines) == _count(sim_journal, "SELECT COUNT(*) FROM events")
    conn = sqlite3.connect(f"file:{sim_journal}?mode=ro", uri=True)
    try:
        for line, row in zip(lines, conn.execute("SELECT seq, local_ms, venue_ms, source, kind, rfq_id, quote_id, "
                                                 "payload, prev_hash, hash FROM events ORDER BY seq")):
            assert f'"payload":{row[7]},' in line
            record = json.loads(line)
            assert record["seq"] == row[0] and record["hash"] == row[9]
            assert row_hash(record["prev_hash"], *row[:7], row[7]) == record["hash"]
    finally:
        conn.close()


def test_export_csv_since_and_tables(sim_journal: Path, capsys) -> None:
    code, out, _ = run(capsys, "journal", "export", "--format", "csv", "--table", "fills", "--journal",
                       str(sim_journal))
    fills = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(fills) == _count(sim_journal, "SELECT COUNT(*) FROM fills")
    assert any(f["reference_price"] for f in fills) and all(f["price"] for f in fills)
    middle = _count(sim_journal, "SELECT local_ms FROM events WHERE seq = (SELECT MAX(seq) / 2 FROM events)")
    code, out, _ = run(capsys, "journal", "export", "--format", "csv", "--since", str(middle), "--journal",
                       str(sim_journal))
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rows and all(int(r["local_ms"]) >= middle for r in rows)
    assert len(rows) == _count(sim_journal, f"SELECT COUNT(*) FROM events WHERE local_ms >= {middle}")
    code, _, err = run(capsys, "journal", "export", "--table", "daily_summary", "--since", "1d", "--journal",
                       str(sim_journal))
    assert code == 2 and "no time column" in err


def test_export_to_a_file(sim_journal: Path, tmp_path: Path, capsys) -> None:
    target = tmp_path / "events.csv"
    code, out, err = run(capsys, "journal", "export", "--format", "csv", "-o", str(target), "--journal",
                         str(sim_journal))
    assert code == 0 and out == "" and "exported" in err
    assert len(target.read_text().splitlines()) == 1 + _count(sim_journal, "SELECT COUNT(*) FROM events")


# --- stats --------------------------------------------------------------------------------------

def test_stats_overall_and_by_pair(sim_journal: Path, capsys) -> None:
    code, out, _ = run(capsys, "journal", "stats", "--json", "--journal", str(sim_journal))
    (overall,) = json.loads(out)
    rfqs = _own_rfqs(sim_journal)
    assert code == 0 and overall["rfqs"] == len(rfqs)
    assert overall["fills"] == sum(1 for r in rfqs if r["status"] in ("accepted", "processing", "successful"))
    assert overall["accept_latency_p50_ms"] <= overall["accept_latency_p99_ms"]
    assert overall["decision_latency_p50_ms"] <= overall["decision_latency_p99_ms"]
    code, out, _ = run(capsys, "journal", "stats", "--by", "pair", "--json", "--journal", str(sim_journal))
    by_pair = {s["pair"]: s for s in json.loads(out)}
    assert {"BTC/USDT", "ETH/USDT", "USDC/USD"} <= set(by_pair)
    assert by_pair["USDC/USD"]["fills"] == 0 and by_pair["USDC/USD"]["fill_rate_pct"] == "0.0"
    btc = by_pair["BTC/USDT"]
    assert btc["fills_with_reference"] >= 1 and btc["avg_vs_reference_bps"] is not None
    assert abs(float(btc["avg_vs_reference_bps"])) < 100  # the sim quotes around its reference
    assert btc["avg_fill_price"].startswith("10")


def test_stats_tables_by_day_and_lp(sim_journal: Path, capsys) -> None:
    code, out, _ = run(capsys, "journal", "stats", "--by", "day", "--journal", str(sim_journal))
    assert code == 0 and out.splitlines()[0].split()[:3] == ["DAY", "RFQS", "FILLS"]
    code, out, _ = run(capsys, "journal", "stats", "--by", "lp", "--json", "--journal", str(sim_journal))
    lps = json.loads(out)
    assert code == 0 and sum(s["fills"] for s in lps) == _count(sim_journal, "SELECT COUNT(*) FROM fills")


# --- verify / rebuild / prune -------------------------------------------------------------------

def test_verify_passes_on_the_run(sim_journal: Path, capsys) -> None:
    code, out, _ = run(capsys, "journal", "verify", "--journal", str(sim_journal))
    assert code == 0 and "journal verified" in out and "FAILED" not in out
    code, out, _ = run(capsys, "journal", "verify", "--json", "--journal", str(sim_journal))
    report = json.loads(out)
    assert report["ok"] is True and report["head_seq"] == _count(sim_journal, "SELECT MAX(seq) FROM events")
    assert {c["name"] for c in report["checks"]} >= {"hash chain", "integrity_check", "derived: rfqs"}


def test_verify_names_the_first_edited_row_and_exits_1(journal_copy: Path, capsys) -> None:
    conn = sqlite3.connect(journal_copy)
    seq = conn.execute("SELECT MIN(seq) FROM events WHERE kind = 'decision'").fetchone()[0]
    conn.execute("UPDATE events SET payload = replace(payload, '\"action\":\"accept\"', '\"action\":\"none\"') "
                 "WHERE seq = ?", (seq,))
    conn.commit()
    conn.close()
    code, out, _ = run(capsys, "journal", "verify", "--json", "--journal", str(journal_copy))
    report = json.loads(out)
    chain = next(c for c in report["checks"] if c["name"] == "hash chain")
    assert code == 1 and report["ok"] is False and chain["first_bad"] == {"seq": seq, "present": True}
    code, out, _ = run(capsys, "journal", "verify", "--journal", str(journal_copy))
    assert code == 1 and f"event seq {seq}" in out and "JOURNAL FAILED VERIFICATION" in out


def test_verify_expect_head_catches_cut_off_newest_rows(journal_copy: Path, capsys) -> None:
    code, out, _ = run(capsys, "journal", "verify", "--journal", str(journal_copy))
    hint = next(line for line in out.splitlines() if "--expect-head" in line)
    head = hint.split("--expect-head ", 1)[1].strip()
    code, out, _ = run(capsys, "journal", "verify", "--expect-head", head, "--journal", str(journal_copy))
    assert code == 0, out
    conn = sqlite3.connect(journal_copy)
    conn.execute("DELETE FROM events WHERE seq > (SELECT MAX(seq) - 3 FROM events)")  # chain still links
    conn.commit()
    conn.close()
    code, out, _ = run(capsys, "journal", "verify", "--json", "--expect-head", head, "--journal", str(journal_copy))
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert code == 1 and checks["hash chain"]["ok"] and not checks["expected head"]["ok"]
    assert "truncated" in checks["expected head"]["detail"]
    code, _, err = run(capsys, "journal", "verify", "--expect-head", "12", "--journal", str(journal_copy))
    assert code == 2 and "SEQ:HASH" in err


def test_rebuild_repairs_derived_tables(journal_copy: Path, capsys) -> None:
    conn = sqlite3.connect(journal_copy)
    victim = conn.execute("SELECT rfq_id FROM rfqs ORDER BY rfq_id LIMIT 1").fetchone()[0]
    conn.execute("UPDATE rfqs SET status = 'cancelled' WHERE rfq_id = ?", (victim,))
    conn.commit()
    conn.close()
    code, out, _ = run(capsys, "journal", "verify", "--journal", str(journal_copy))
    assert code == 1 and f"rfqs row rfq_id={victim} differs" in out
    code, out, _ = run(capsys, "journal", "rebuild", "--journal", str(journal_copy))
    assert code == 0 and "rebuilt from" in out
    code, _, _ = run(capsys, "journal", "verify", "--journal", str(journal_copy))
    assert code == 0


def test_prune_refuses_the_last_day_and_finds_nothing_older(journal_copy: Path, capsys) -> None:
    code, _, err = run(capsys, "journal", "prune", "--before", "1h", "--journal", str(journal_copy))
    assert code == 1 and "last 24 hours" in err
    code, out, _ = run(capsys, "journal", "prune", "--before", "2d", "--journal", str(journal_copy))
    assert code == 0 and out.startswith("nothing to prune")
    code, _, _ = run(capsys, "journal", "verify", "--journal", str(journal_copy))
    assert code == 0


def test_prune_dry_run_and_real_prune_keep_the_chain_verifiable(journal_copy: Path, capsys) -> None:
    # Everything in the run is recent: prune "10 days later" (the 24-hour guard uses now_ms).
    from rfqbot.audit.prune import prune

    head = _count(journal_copy, "SELECT MAX(seq) FROM events")
    last_ms = _count(journal_copy, "SELECT MAX(local_ms) FROM events")
    open_before = {r["rfq_id"] for r in _own_rfqs(journal_copy) if r["status"] not in ("successful", "expired")}
    writer = Journal(journal_copy, FakeClock(last_ms + 10 * 86_400_000))
    try:
        plan = prune(writer, last_ms + 1, now_ms=last_ms + 10 * 86_400_000, dry_run=True)
        assert plan.last_seq is not None and _count(journal_copy, "SELECT COUNT(*) FROM events") == head
        done = prune(writer, last_ms + 1, now_ms=last_ms + 10 * 86_400_000)
        assert done == plan
        writer.append("note.after_prune", source="test", payload={})
    finally:
        writer.close()
    code, out, _ = run(capsys, "journal", "verify", "--journal", str(journal_copy))
    assert code == 0, out
    assert "starts at a prune checkpoint" in out
    # A prefix is pruned: open RFQs (and everything interleaved with them) stay, whole.
    assert plan.events > 0 and open_before
    assert open_before <= {r["rfq_id"] for r in _own_rfqs(journal_copy)}
    assert _count(journal_copy, "SELECT MIN(seq) FROM events") == plan.last_seq


# --- older schema ---------------------------------------------------------------------------------

def _v1_journal(tmp_path: Path) -> Path:
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path)
    conn.executescript((Path(__file__).parent / "fixtures" / "journal_v1.sql").read_text())
    conn.close()
    return path


def test_verify_reads_an_old_journal_without_upgrading_it_and_says_it_is_not_fully_checked(tmp_path: Path,
                                                                                           capsys) -> None:
    path = _v1_journal(tmp_path)
    code, out, _ = run(capsys, "journal", "verify", "--json", "--journal", str(path))
    report = json.loads(out)
    assert code == 1 and report["schema_version"] == 1 and report["events"] == 23
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["hash chain"]["ok"] and checks["integrity_check"]["ok"]
    assert not checks["schema version"]["ok"] and "rfqbot journal upgrade" in checks["schema version"]["detail"]
    assert _count(path, "PRAGMA user_version") == 1


def test_reading_an_old_journal_never_upgrades_it(tmp_path: Path, capsys) -> None:
    path = _v1_journal(tmp_path)
    code, out, err = run(capsys, "journal", "list", "--json", "--journal", str(path))
    assert code == 1 and "start the daemon once (or run `rfqbot journal upgrade`" in err
    assert _count(path, "PRAGMA user_version") == 1
    code, out, _ = run(capsys, "journal", "tail", "-n", "3", "--journal", str(path))  # events: any version
    assert code == 0 and out.count("\n") == 3
    code, out, err = run(capsys, "journal", "upgrade", "--journal", str(path))
    assert code == 0 and "from schema v1 to v3" in out, err
    code, out, err = run(capsys, "journal", "list", "--json", "--journal", str(path))
    assert code == 0, err
    assert {r["rfq_id"] for r in json.loads(out)} == {"MP700000000000000001", "MP700000000000000011",
                                                      "MP700000000000000021"}
    code, out, _ = run(capsys, "journal", "verify", "--journal", str(path))
    assert code == 0 and "derived: reference_prices" in out
    code, out, _ = run(capsys, "journal", "upgrade", "--journal", str(path))
    assert code == 0 and "already at schema v3" in out


def test_a_v2_journal_is_read_as_it_is_with_a_warning(tmp_path: Path, capsys) -> None:
    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path)
    conn.executescript((Path(__file__).parent / "fixtures" / "journal_v2.sql").read_text())
    conn.close()
    code, out, err = run(capsys, "journal", "show", "MP700000000000000021", "--json", "--journal", str(path))
    assert code == 0 and "journal.older_schema" in err and "rfqbot journal upgrade" in err
    assert json.loads(out)["venue_calls"] == []  # v2's projection: the rfq-active call is not linked
    assert _count(path, "PRAGMA user_version") == 2  # read, never migrated
    code, _, err = run(capsys, "journal", "upgrade", "--journal", str(path))
    assert code == 0, err
    code, out, _ = run(capsys, "journal", "show", "MP700000000000000021", "--json", "--journal", str(path))
    calls = json.loads(out)["venue_calls"]
    assert code == 0 and [c["endpoint"] for c in calls] == ["/api/v1/market-place/rfq-active/MP700000000000000021"]


# --- the README's sqlite-utils examples -----------------------------------------------------------

def test_readme_sqlite_utils_examples_run(journal_copy: Path) -> None:
    import shlex
    import subprocess
    import sys

    doc = readme_section("The journal")
    commands = [line for line in doc.splitlines() if line.startswith("sqlite-utils ")]
    filled = next(r for r in _own_rfqs(journal_copy) if r["status"] == "successful")
    tool = Path(sys.executable).with_name("sqlite-utils")
    assert len(commands) >= 4 and tool.exists()
    for command in commands:
        argv = shlex.split(command.replace("MP719174027490602511", filled["rfq_id"]))
        argv = [str(tool)] + [str(journal_copy) if a == "journal.db" else a for a in argv[1:]]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (command, done.stderr)
        assert done.stdout.strip() not in ("", "[]"), command
