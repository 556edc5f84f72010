"""``rfqbot sim`` on the command line: bad settings are exit 78 with file and key (never a
traceback), loopback only unless --allow-remote, and defaults that match rfqbot's
``simulator`` venue profile (port 8443, CA and ground truth in the current folder)."""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from rfqbot.sim import SimConfig
from rfqbot.sim.cli import build_parser, config_from_args, main as sim_main, rfqbot_venue
from rfqbot.sim.config import SimConfigError, is_loopback_host

PAIR = ('  - {base: BTC, quote: USDT, base_precision: "%s", quote_precision: "0.01", min_base: "0.001",'
        ' max_base: "10", min_quote: "10", max_quote: "100000", reference_price: "100"}\n')

BAD_YAML = {
    "pair missing fields": ("pairs:\n  - {base: BTC, quote: USDT}\n",
                            "pairs[0]: missing key(s) base_precision, quote_precision, min_base"),
    "yaml syntax": ("seed: 1\nlps: [1, 2\n", "YAML syntax error"),
    "precision not a number": ("pairs:\n" + PAIR % "x",
                               "pairs[0].base_precision: 'x' is not a decimal number"),
    "time scale text": ("time_scale: fast\n", "time_scale: must be a number, got 'fast'"),
    "unknown key": ("sede: 9\n", "unknown key 'sede'; did you mean 'seed'?"),
    "lp field type": ("lps:\n  - name: X\n    latency_ms: soon\n",
                      "lps[0].latency_ms: must be a whole number, got 'soon'"),
    "lp not a mapping": ("lps: [3]\n", "lps[0]: must be a mapping of settings, got 3"),
    "lp unknown key": ("lps:\n  - name: X\n    latency: 3\n",
                       "lps[0]: unknown key 'latency'; did you mean 'latency_ms'?"),
    "pairs not a list": ("pairs: BTC\n", "pairs: must be a list of pairs, got 'BTC'"),
    "top level list": ("- 1\n- 2\n", "the top level must be a mapping of settings"),
    "bool for a flag": ("tls: maybe\n", "tls: must be true or false, got 'maybe'"),
    "balance": ("balances: {BTC: lots}\n", "balances.BTC: 'lots' is not a decimal number"),
    "lp_configs is not a yaml key": ("lp_configs: []\n", "unknown key 'lp_configs'"),
    "port range": ("port: 70000\n", "port: must be 0..65535 (got 70000)"),
    "non-loopback host in yaml": ("host: 0.0.0.0\n", "host: '0.0.0.0' is not a loopback address"),
}


@pytest.mark.parametrize("case", sorted(BAD_YAML))
def test_a_bad_sim_yaml_exits_78_naming_file_and_key(case: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    text, expected = BAD_YAML[case]
    path = tmp_path / "sim.yaml"
    path.write_text(text, encoding="utf-8")
    assert sim_main(["--config", str(path)]) == 78
    err = capsys.readouterr().err
    assert err.startswith(f"rfqbot sim: {path}") and expected in err and "Traceback" not in err


def test_the_yaml_syntax_error_names_the_line(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "sim.yaml"
    path.write_text("seed: 1\ntime_scale: 2\nlps: [1, 2\n", encoding="utf-8")
    assert sim_main(["--config", str(path)]) == 78
    assert capsys.readouterr().err.startswith(f"rfqbot sim: {path}:4: YAML syntax error")


def test_a_missing_or_undecodable_file_is_78(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert sim_main(["--config", str(tmp_path / "nope.yaml")]) == 78
    assert "nope.yaml: cannot read it" in capsys.readouterr().err
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"seed: \xe9\n")
    assert sim_main(["--config", str(path)]) == 78
    assert "is not UTF-8 text" in capsys.readouterr().err


def test_a_good_sim_yaml_keeps_numbers_for_text_fields(tmp_path: Path) -> None:
    path = tmp_path / "sim.yaml"
    path.write_text("time_scale: 5\npairs:\n" + PAIR % "0.0001" + "lps:\n  - {name: A, spread_bps: 1.5}\n",
                    encoding="utf-8")
    config = config_from_args(build_parser().parse_args(["--config", str(path)]), env={})
    assert config.time_scale == 5.0 and isinstance(config.time_scale, float)
    assert config.pairs[0].base_precision == "0.0001" and config.effective_lps()[0].spread_bps == "1.5"


def test_bad_flag_values_are_78_too(capsys: pytest.CaptureFixture[str]) -> None:
    assert sim_main(["--time-scale", "0"]) == 78
    assert "time_scale: must be > 0" in capsys.readouterr().err


def test_embedding_code_gets_a_named_error_not_a_type_error() -> None:
    with pytest.raises(SimConfigError, match="time_scale: must be a number, got 'fast'"):
        SimConfig(time_scale="fast").validate()   # type: ignore[arg-type]


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com", ""])
def test_a_non_loopback_host_is_refused_without_allow_remote(
        host: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert sim_main(["--host", host]) == 78
    err = capsys.readouterr().err
    assert "is not a loopback address" in err and "--allow-remote" in err


def test_allow_remote_lets_a_non_loopback_host_through() -> None:
    config = config_from_args(build_parser().parse_args(["--host", "0.0.0.0", "--allow-remote"]),
                              env={})
    assert (config.host, config.allow_remote) == ("0.0.0.0", True)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost", "[::1]"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)


def test_cli_defaults_match_the_simulator_profile(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = config_from_args(build_parser().parse_args([]), env={})
    assert (config.host, config.port, config.tls) == ("127.0.0.1", 8443, True)
    assert config.ca_dir == str(tmp_path)
    assert config.ground_truth_path == str(tmp_path / "rfqbot-sim-truth.jsonl")
    assert config_from_args(build_parser().parse_args(["--port", "0"]), env={}).port == 0
    assert SimConfig().port == 0 and SimConfig().ca_dir is None   # embedded: free port, temp files


def test_a_yaml_port_beats_the_cli_default_and_a_flag_beats_both(tmp_path: Path) -> None:
    path = tmp_path / "sim.yaml"
    path.write_text("port: 9000\n", encoding="utf-8")
    assert config_from_args(build_parser().parse_args(["--config", str(path)]), env={}).port == 9000
    assert config_from_args(build_parser().parse_args(["--config", str(path), "--port", "0"]),
                            env={}).port == 0


def test_the_printed_venue_line_is_what_rfqbot_needs(tmp_path: Path) -> None:
    from rfqbot.config.schema import load_config_text   # the client side, only to check the hand-off

    ca = tmp_path / "rfqbot-sim-ca.pem"
    import trustme

    trustme.CA().cert_pem.write_to_path(str(ca))   # the client loads it: it must be a real CA file
    default = SimpleNamespace(rest_url="https://127.0.0.1:8443", ws_url="wss://127.0.0.1:8443",
                              ca_file=str(ca))
    line = rfqbot_venue(default)  # type: ignore[arg-type]
    assert line == f'{{name: simulator, ca_file: "{ca}"}}'
    profile = load_config_text(f"venue: {line}\n", file="c.yaml").profile()
    assert (profile.rest_url, profile.ws_url, profile.ca_file) == \
        ("https://127.0.0.1:8443", "wss://127.0.0.1:8443", str(ca))
    plain = SimpleNamespace(rest_url="http://127.0.0.1:5000", ws_url="ws://127.0.0.1:5000", ca_file=None)
    line = rfqbot_venue(plain)  # type: ignore[arg-type]
    profile = load_config_text(f"venue: {line}\n", file="c.yaml").profile()
    assert (profile.rest_url, profile.ws_url) == ("http://127.0.0.1:5000", "ws://127.0.0.1:5000")


def test_a_taken_port_says_to_choose_another(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert sim_main(["--port", str(port), "--no-tls", "--lps", "0"]) == 1
    assert "choose another --port" in capsys.readouterr().err


def test_an_unwritable_ca_folder_is_a_clear_start_error(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    assert sim_main(["--port", "0", "--ca-dir", str(blocker / "sub"),
                     "--ground-truth", str(tmp_path / "t.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "cannot write" in err and "--ca-dir" in err
