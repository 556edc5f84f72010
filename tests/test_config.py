"""Config loading: exact error messages (file, key path, line), Decimal values, credentials."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
import trustme

from rfqbot.config.schema import (Credentials, load_config, load_config_text, load_credentials, parse_duration,
                           redacted_dict, resolve_config_path)
from rfqbot.errors import ConfigError
from tests.readme import readme_section

SHIPPED = Path(__file__).resolve().parent.parent / "config.yaml"


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def error_of(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config_text(textwrap.dedent(text), file="c.yaml")
    return caught.value


def test_empty_file_gives_defaults() -> None:
    settings = load_config_text("", file="c.yaml")
    assert settings.venue.name == "hashkey-sg-sandbox" and settings.venue.recv_window_ms == 5000
    assert settings.credentials.api_key_env == "RFQBOT_API_KEY"
    assert settings.streams.public_topics == ["rfqs", "quotes"]
    assert settings.engine.accept_workers == 2 and settings.listen_key.extend_every_s == 1800
    assert settings.profile().rest_url == "https://api-pro.sim.hashkeydev.com"


def test_empty_section_means_defaults() -> None:
    assert load_config_text("risk:\nvenue:\n", file="c.yaml").risk.max_open_rfqs == 20


def test_empty_mapping_or_list_key_means_its_default() -> None:
    """As for sections (README, Configuration): entries all commented out is the default."""
    settings = load_config_text(textwrap.dedent("""\
        risk:
          max_rfq_amount:
            # BTC: "1"
          daily_notional:
        streams:
          spot_symbols:
          public_topics:
        """), file="c.yaml")
    assert settings.risk.max_rfq_amount == {} and settings.risk.daily_notional == {}
    assert settings.streams.spot_symbols == [] and settings.streams.public_topics == ["rfqs", "quotes"]


def test_empty_misspelt_section_is_still_an_unknown_key() -> None:
    err = error_of("rsik:\n  # max_open_rfqs: 5\n")
    assert (err.key, err.line) == ("rsik", 1) and "did you mean 'risk'?" in str(err)


@pytest.mark.parametrize("text, key", [
    ("strategies:\n  BTC/USDT:\n    # - use: price_limit\n", "strategies.BTC/USDT"),
    ("rfqs:\n  -\n", "rfqs[0]"),
])
def test_empty_value_without_a_default_says_it_is_empty(text: str, key: str) -> None:
    err = error_of(text)
    assert (err.key, err.line) == (key, 2)
    assert str(err) == f"c.yaml:2: {key}: is empty (every line under it commented out?); give it its entries, or remove it"


def test_floats_are_exact_decimals() -> None:
    settings = load_config_text(textwrap.dedent("""\
        strategies:
          BTC/USDT:
            - use: price_limit
              limit_price: 70000.1
        risk:
          max_rfq_amount: {USDT: 0.1}
        """), file="c.yaml")
    assert settings.strategies["BTC/USDT"][0]["limit_price"] == Decimal("70000.1")
    assert settings.risk.max_rfq_amount == {"USDT": Decimal("0.1")}
    assert settings.chains is not None and settings.chains.for_pair("BTC/USDT") is not None


def test_unknown_key_with_hint_and_line() -> None:
    err = error_of("""\
        venue:
          name: hashkey-sg
          recv_windw_ms: 3000
        """)
    assert str(err) == "c.yaml:3: venue.recv_windw_ms: unknown key 'recv_windw_ms'; did you mean 'recv_window_ms'?"
    assert (err.file, err.key, err.line) == ("c.yaml", "venue.recv_windw_ms", 3)


def test_unknown_top_level_key_lists_allowed_when_nothing_is_close() -> None:
    err = error_of("zzz: 1\n")
    assert str(err).startswith("c.yaml:1: zzz: unknown key 'zzz'; allowed keys here: alerts, clock_sync,")


def test_wrong_type() -> None:
    err = error_of("""\
        engine:
          accept_workers: many
        """)
    assert str(err) == ("c.yaml:2: engine.accept_workers: Input should be a valid integer, unable to parse "
                        "string as an integer (got 'many')")


def test_unknown_profile_name() -> None:
    err = error_of("venue:\n  name: hashkey-moon\n")
    assert err.key == "venue.name" and err.line == 2
    assert "'hashkey-sg'" in str(err) and "'simulator'" in str(err)


def test_bad_yaml_reports_line() -> None:
    err = error_of("""\
        venue:
          name: hashkey-sg
        engine: [1, 2
        risk: {}
        """)
    assert err.line == 4 and str(err).startswith("c.yaml:4: YAML syntax error:")


def test_duplicate_key_is_an_error() -> None:
    err = error_of("""\
        engine:
          accept_workers: 2
          accept_workers: 3
        """)
    assert str(err) == "c.yaml:3: engine.accept_workers: duplicate key 'accept_workers' (first at line 2); remove one of them"


@pytest.mark.parametrize("text, key, line", [
    ("credentials:\n  api_secret: abc\n", "credentials.api_secret", 2),
    ("venue:\n  name: hashkey-sg\n  api_key: abc\n", "venue.api_key", 3),
    ("alerts:\n  token: xyz\n", "alerts.token", 2),
])
def test_inline_secret_is_rejected(text: str, key: str, line: int) -> None:
    err = error_of(text)
    assert (err.key, err.line) == (key, line)
    assert "looks like an inline secret; secrets never go in the config file: put the API key and secret in the " \
           "environment (RFQBOT_API_KEY / RFQBOT_API_SECRET" in str(err)
    assert "LoadCredential=" in str(err)


def test_high_entropy_value_is_rejected_without_echoing_it() -> None:
    secret = "lH3ELTNiFxCQTmi9pPcWWikhsjO04Yoqw3euoHUuOLC3GYBW64ZqzQsiOEHXQS76"
    err = error_of(f"credentials:\n  api_key_env: {secret}\n")
    assert err.key == "credentials.api_key_env" and err.line == 2
    assert "looks like an inline secret (a long random token)" in str(err)
    assert secret not in str(err)


def test_env_name_fields_accept_names() -> None:
    settings = load_config_text("credentials:\n  api_key_env: DESK_A_HASHKEY_KEY\n", file="c.yaml")
    assert settings.credentials.api_key_env == "DESK_A_HASHKEY_KEY"


def test_strategy_errors_carry_key_path_and_line() -> None:
    err = error_of("""\
        strategies:
          BTC/USDT:
            - use: price_limit
              limit_pric: 70000
        """)
    assert (err.key, err.line) == ("strategies.BTC/USDT[0].limit_pric", 4)
    assert str(err) == ("c.yaml:4: strategies.BTC/USDT[0].limit_pric: unknown parameter 'limit_pric' for "
                        "strategy 'price_limit'; allowed: limit_price")


def test_rfq_schedule_validation() -> None:
    base = "rfqs:\n  - buy: BTC\n    sell: USDT\n    sell_amount: 100\n    mode: real-time\n"
    assert load_config_text(base + "    every: 5m\n", file="c.yaml").rfqs[0].every_s == 300
    assert load_config_text(base + "    cron: '0 * * * *'\n", file="c.yaml").rfqs[0].cron == "0 * * * *"
    err = error_of(base + "    every: 5 minutes\n")
    assert str(err) == "c.yaml:6: rfqs[0].every: invalid duration '5 minutes'; write it like 30s, 5m, 1h or 1d"
    err = error_of(base + "    cron: '61 * * * *'\n")
    assert err.key == "rfqs[0].cron" and err.line == 6 and "invalid cron expression '61 * * * *'" in str(err)
    err = error_of(base)
    assert err.key == "rfqs[0]" and err.line == 2 and "give exactly one of 'every'" in str(err)
    err = error_of(base + "    every: 1h\n    cron: '0 * * * *'\n")
    assert "give exactly one of 'every'" in str(err)
    err = error_of(base.replace("100", "-5") + "    every: 1h\n")
    assert err.key == "rfqs[0].sell_amount" and err.line == 4
    err = error_of(base + "    every: 1h\n    expire_sec: 30\n")
    assert err.key == "rfqs[0].expire_sec" and "greater than or equal to 600" in str(err)


def test_several_errors_are_all_reported() -> None:
    err = error_of("engine:\n  accept_workers: 0\nreconcile:\n  every_s: 1\n")
    lines = str(err).splitlines()
    assert len(lines) == 2 and lines[1].startswith("c.yaml:4: reconcile.every_s:")


def test_plain_http_only_to_loopback() -> None:
    assert load_config_text("venue:\n  rest_url: http://127.0.0.1:9000\n", file="c.yaml").profile().rest_url == \
        "http://127.0.0.1:9000"
    err = error_of("venue:\n  rest_url: http://api.example.com\n")
    assert err.key == "venue.rest_url" and "only to 127.0.0.1/localhost" in str(err)


def test_overrides_apply_to_profile(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca))  # ca_file is loaded as a CA when checked
    settings = load_config_text(textwrap.dedent(f"""\
        venue:
          name: hashkey-sg
          ws_url: wss://stream.example.com/
          api_key_header: X-APIKEY
          ca_file: {ca}
          recv_window_ms: 3000
        """), file="c.yaml")
    profile = settings.profile()
    assert (profile.name, profile.rest_url, profile.ws_url) == ("hashkey-sg", "https://api-pro.hashkey.com",
                                                               "wss://stream.example.com")
    assert profile.api_key_header == "X-APIKEY" and profile.recv_window_ms == 3000 and profile.ca_file == str(ca)
    assert profile.public_stream_url == "wss://stream.example.com/quote/ws/v1"
    assert profile.private_stream_url("K1") == "wss://stream.example.com/api/v1/ws/K1"


def test_missing_ca_file() -> None:
    err = error_of("venue:\n  ca_file: /nonexistent/ca.pem\n")
    assert err.key == "venue.ca_file" and "does not exist" in str(err)


def test_load_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = write(tmp_path, "engine: {accept_workers: 3}\n", "explicit.yaml")
    from_env = write(tmp_path, "engine: {accept_workers: 4}\n", "env.yaml")
    write(tmp_path, "engine: {accept_workers: 5}\n", "config.yaml")
    monkeypatch.chdir(tmp_path)
    env = {"RFQBOT_CONFIG": from_env}
    assert load_config(explicit, env=env).engine.accept_workers == 3
    assert load_config(None, env=env).engine.accept_workers == 4
    assert load_config(None, env={}).engine.accept_workers == 5
    assert resolve_config_path(None, {}) == "config.yaml"
    assert load_config(explicit, env={}).file == explicit


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="/nope.yaml: config file not found; pass --config PATH"):
        load_config("/nope.yaml", env={})


def test_credentials_from_env() -> None:
    settings = load_config_text("credentials: {api_key_env: K, api_secret_env: S}\n", file="c.yaml")
    creds = load_credentials(settings, env={"K": "key-value-1", "S": "secret-value-1"})
    assert (creds.api_key, creds.api_secret) == ("key-value-1", "secret-value-1")
    assert "key-value-1" not in repr(creds) and "secret-value-1" not in str(creds)


def test_credentials_directory_wins(tmp_path: Path) -> None:
    (tmp_path / "api-key").write_text("file-key\n")
    (tmp_path / "api-secret").write_text("file-secret\n")
    settings = load_config_text("", file="c.yaml")
    creds = load_credentials(settings, env={"RFQBOT_API_KEY": "env-key", "RFQBOT_API_SECRET": "env-secret",
                                            "CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert (creds.api_key, creds.api_secret, creds.source) == ("file-key", "file-secret", "systemd credentials")


def test_missing_credentials_say_what_to_set(tmp_path: Path) -> None:
    settings = load_config_text("", file="c.yaml")
    with pytest.raises(ConfigError) as caught:
        load_credentials(settings, env={})
    assert str(caught.value) == ("c.yaml: credentials.api_key_env: no API key found: set environment variable "
                                 "RFQBOT_API_KEY (or provide 'api-key' with systemd LoadCredential=)")
    with pytest.raises(ConfigError) as caught:
        load_credentials(settings, env={"RFQBOT_API_KEY": "k", "CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert str(caught.value) == (f"c.yaml: credentials.api_secret_env: no API secret found: set environment "
                                 f"variable RFQBOT_API_SECRET or create {tmp_path / 'api-secret'}")


def test_credentials_repr_is_redacted() -> None:
    assert repr(Credentials("a-key", "a-secret")) == "Credentials(api_key='***', api_secret='***', source='environment')"


@pytest.mark.parametrize("text, seconds", [("30s", 30), ("5m", 300), ("1h", 3600), ("1d", 86400), ("1h30m", 5400),
                                           ("90", 90), (" 2H ", 7200)])
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "0s", "m", "1.5h", "-1m", "5 minutes"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_redacted_dict_shows_effective_config() -> None:
    settings = load_config_text("alerts:\n  webhook_url: https://hooks.example.com/T000/B000/abc\n"
                                "risk:\n  daily_notional: {USDT: 100000.5}\n", file="c.yaml")
    data = redacted_dict(settings)
    assert data["venue"]["rest_url"] == "https://api-pro.sim.hashkeydev.com"
    assert data["alerts"]["webhook_url"] == "https://hooks.example.com/***"
    assert data["risk"]["daily_notional"] == {"USDT": "100000.5"}
    assert data["listen_key"] == {"extend_every_s": 1800, "fresh_key_grace_s": 10}


def test_shipped_config_is_valid() -> None:
    settings = load_config(str(SHIPPED), env={})
    assert settings.venue.name == "hashkey-sg-sandbox"


def test_the_documented_simulator_venue_section_works(tmp_path, monkeypatch) -> None:
    """The README's two configuration lines point rfqbot at `rfqbot sim`'s defaults."""
    import re
    from pathlib import Path

    doc = readme_section("Configuration")
    section = doc.split("### Pointing rfqbot at the simulator", 1)[1]
    yaml_block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "rfqbot-sim-ca.pem"))
    profile = load_config_text(yaml_block, file="c.yaml").profile()
    from rfqbot.sim.cli import CLI_DEFAULT_PORT, cli_defaults
    from rfqbot.sim.server import CA_FILE_NAME

    assert (profile.rest_url, profile.ws_url) == (f"https://127.0.0.1:{CLI_DEFAULT_PORT}",
                                                  f"wss://127.0.0.1:{CLI_DEFAULT_PORT}")
    assert profile.ca_file == f"./{CA_FILE_NAME}" and cli_defaults(str(tmp_path)).ca_dir == str(tmp_path)
