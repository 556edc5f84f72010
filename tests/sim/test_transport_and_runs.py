"""Rate limits, TLS with the generated CA, same seed -> same run, ground truth, CLI, sim.yaml."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import requests
import websocket

from rfqbot.sim import SimConfig, Simulator, load_yaml
from rfqbot.sim.cli import main as sim_main
from tests.sim.helpers import (VenueClient, WsReader, open_private, open_public, quiet_config,
                               wait_until)

PAIRS = "/api/v1/market-place/get-pairs"
REPO = Path(__file__).resolve().parents[2]


def test_query_rate_limit_429_then_418_then_recovers(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(rate_limits=True, time_scale=60)          # penalty minute -> 1 s
    client = VenueClient(sim)
    codes = [client.call("GET", PAIRS).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert client.call("GET", PAIRS).status_code == 418
    time.sleep(1.1)
    assert client.call("GET", PAIRS).status_code == 200


def test_order_calls_have_their_own_larger_budget(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(rate_limits=True, time_scale=60)
    client = VenueClient(sim)
    codes = [client.call("POST", "/api/v1/market-place/create-rfq",
                         {"buyCcy": "BTC", "sellCcy": "USDT", "sellAmount": "100",
                          "rfqMode": "real-time"}).status_code for _ in range(11)]
    assert codes == [200] * 10 + [429]


def test_tls_with_the_generated_ca(make_sim: Callable[..., Simulator],
                                   readers: list[WsReader]) -> None:
    sim = make_sim(tls=True)
    assert sim.rest_url.startswith("https://") and sim.ws_url.startswith("wss://")
    assert Path(sim.ca_file).read_text().startswith("-----BEGIN CERTIFICATE-----")
    client = VenueClient(sim)
    assert client.call("GET", PAIRS).status_code == 200
    with requests.Session() as untrusting:
        untrusting.trust_env = False
        with pytest.raises(requests.exceptions.SSLError):
            untrusting.get(sim.rest_url + "/api/v1/time", timeout=3)
    public = open_public(sim, readers, "rfqs")
    private = open_private(sim, readers, client.listen_key())
    rfq_id = client.create_rfq()
    public.topic("rfqs", rfq_id)
    private.topic("rfqUpdates", rfq_id)
    with pytest.raises(ssl.SSLCertVerificationError):
        websocket.create_connection(f"{sim.ws_url}/quote/ws/v1", timeout=3)   # no CA given


def _run_once(seed: int) -> tuple:
    config = SimConfig(tls=False, seed=seed, lps=3, background_rfqs_per_min=0,
                       rate_limits=False, time_scale=20, reference_tick_s=100000)
    with Simulator(config) as sim:
        client = VenueClient(sim)
        rfq_ids = []
        for amount in ("1000", "2000"):      # the same sequence of operations in each run
            rfq_id = client.create_rfq(amount=amount)
            rfq_ids.append(rfq_id)
            deadline = time.monotonic() + 3
            while len(client.json("GET", f"/api/v1/market-place/rfq-active/{rfq_id}")) < 3:
                assert time.monotonic() < deadline
                time.sleep(0.02)
        # Prices, amounts and latencies are drawn per RFQ in LP order, so they repeat exactly.
        # Quote ids are handed out as quotes fire: two LPs firing within a few ms of each other
        # on a loaded machine may swap ids, so ids are compared as a set, not per LP.
        truth = sim.truth("quote_created")
        quotes = sorted((q["lp"], q["price"], q["buy_amount"], q["rfq_id"]) for q in truth)
        return sim.api_key, sim.api_secret, rfq_ids, quotes, sorted(q["quote_id"] for q in truth)


def test_same_seed_same_run_other_seed_other_run() -> None:
    first, again, other = _run_once(7), _run_once(7), _run_once(8)
    assert first == again
    assert first[0] != other[0] and first[3] != other[3]  # other credentials, other prices


def test_ground_truth_jsonl_has_pushes_and_accept_timing(make_sim: Callable[..., Simulator],
                                                          readers: list[WsReader],
                                                          tmp_path: Path) -> None:
    path = tmp_path / "truth.jsonl"
    sim = make_sim(quiet_config(ground_truth_path=str(path), bestquote_min_quotes=1))
    client = VenueClient(sim)
    private = open_private(sim, readers, client.listen_key())
    rfq_id = client.create_rfq()
    quote_id = sim.faults.quote(rfq_id, "100000")
    private.topic("bestQuote", rfq_id)
    client.accept(rfq_id, quote_id)
    private.topic("rfqUpdates", rfq_id, status="successful")
    wait_until(lambda: len(sim.truth("push")) >= 5, what="all five pushes to be recorded")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    events = [line["event"] for line in lines]
    for name in ("rfq_created", "quote_created", "status_change", "push", "accept_received",
                 "accept_result"):
        assert name in events
    pushed = next(e for e in lines if e["event"] == "push" and e["topic"] == "bestQuote")
    received = next(e for e in lines if e["event"] == "accept_received")
    assert received["perf_ns"] > pushed["perf_ns"] and received["quote_id"] == quote_id
    changes = [(e["from"], e["to"]) for e in lines if e["event"] == "status_change"]
    assert changes == [(None, "new"), ("new", "accepted"), ("accepted", "processing"),
                       ("processing", "successful")]
    monos = [e["mono_ns"] for e in lines]
    assert monos == sorted(monos)
    [latency] = sim.accept_latencies()
    assert latency["quote_id"] == quote_id
    assert latency["latency_ns"] == received["perf_ns"] - pushed["perf_ns"] > 0


def test_truth_can_live_only_in_the_file(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(truth_in_memory=False)
    client = VenueClient(sim)
    rfq_id = client.create_rfq()
    assert [e["rfq_id"] for e in sim.truth("rfq_created")] == [rfq_id]
    assert sim.state.truth._events == []
    assert [e["event"] for e in sim.truth()][:2] == ["sim_started", "rfq_created"]


def test_a_taken_port_is_a_clear_start_error(make_sim: Callable[..., Simulator]) -> None:
    first = make_sim()
    with pytest.raises(RuntimeError, match=f"failed to start on 127.0.0.1:{first.port}"):
        Simulator(quiet_config(port=first.port)).start()


def test_history_and_rfq_active_agree_with_the_pushes(make_sim: Callable[..., Simulator],
                                                       readers: list[WsReader]) -> None:
    sim = make_sim(lps=4, time_scale=20, background_rfqs_per_min=0)
    client = VenueClient(sim)
    private = open_private(sim, readers, client.listen_key())
    rfq_id = client.create_rfq()
    best = private.topic("bestQuote", rfq_id, timeout=3)["data"]

    def last_pushed() -> list[str]:
        pushes = [e for e in sim.truth("push") if e["topic"] == "bestQuote"]
        return pushes[-1]["quote_ids"] if pushes else []

    def active_ids() -> list[str]:
        return [a["quoteId"] for a in
                client.json("GET", f"/api/v1/market-place/rfq-active/{rfq_id}")]

    wait_until(lambda: active_ids() == last_pushed() and len(last_pushed()) == 4, 3,
               "rfq-active to show the last bestQuote set")
    client.accept(rfq_id, best[0]["quoteOrderId"])
    final = private.topic("rfqUpdates", rfq_id, status="successful", timeout=5)["data"]
    [row] = client.history(rfqId=rfq_id)
    assert (row["status"], row["quoteId"], row["price"]) == \
        (final["status"], final["quoteId"], str(final["price"]))


def test_sim_yaml_sets_lps_and_pairs(tmp_path: Path) -> None:
    path = tmp_path / "sim.yaml"
    path.write_text("seed: 9\ntime_scale: 5\nlps:\n  - name: Solo\n    spread_bps: 1.5\n"
                    "    mode: delayed\n")
    config = load_yaml(path)
    assert config.seed == 9 and config.time_scale == 5
    [lp] = config.effective_lps()
    assert (lp.name, lp.spread_bps, lp.mode) == ("Solo", "1.5", "delayed")
    path.write_text("sede: 9\n")
    with pytest.raises(ValueError, match="unknown key 'sede'"):
        load_yaml(path)


def test_cli_rejects_a_bad_config_with_exit_78(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "sim.yaml"
    path.write_text("lps:\n  - name: X\n    mode: instant\n")
    assert sim_main(["--config", str(path)]) == 78
    assert "mode must be real-time or delayed" in capsys.readouterr().err


def test_cli_prints_urls_and_stops_on_sigterm(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "rfqbot.sim", "--port", "0", "--seed", "5", "--lps", "2",
         "--time-scale", "10", "--ca-dir", str(tmp_path)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        printed: dict[str, str] = {}
        assert process.stdout is not None
        while "Control" not in printed:
            line = process.stdout.readline()
            assert line, process.stderr.read() if process.stderr else "no output"
            name, _, value = line.partition(":")
            printed[name.strip().split()[0]] = value.strip()
        rest_url = printed["REST"].split()[0]
        assert printed["CA"] == str(tmp_path / "rfqbot-sim-ca.pem") and len(printed["API"]) > 0
        assert printed["Ground"] == str(tmp_path / "rfqbot-sim-truth.jsonl")
        with requests.Session() as session:
            session.trust_env = False
            answer = session.get(rest_url + "/api/v1/time", verify=printed["CA"], timeout=3)
        assert "serverTime" in answer.json()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=5)       # drains and closes both pipes


def test_cli_takes_credentials_from_the_environment() -> None:
    from rfqbot.sim.cli import build_parser, config_from_args
    env = {"RFQBOT_SIM_API_KEY": "key-from-env", "RFQBOT_SIM_API_SECRET": "secret-from-env"}
    config = config_from_args(build_parser().parse_args(["--no-tls", "--lps", "2"]), env=env)
    assert (config.api_key, config.api_secret, config.tls, config.lps) == \
        ("key-from-env", "secret-from-env", False, 2)
    flagged = config_from_args(build_parser().parse_args(["--api-key", "k", "--api-secret", "s"]),
                               env=env)
    assert (flagged.api_key, flagged.api_secret) == ("k", "s")
