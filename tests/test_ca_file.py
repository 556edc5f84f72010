"""``venue.ca_file`` that is not a PEM CA certificate: a config error (exit 78) naming the file,
at load time and again where the REST client loads it, never an ssl.SSLError traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from rfqbot.config.schema import load_config_text
from rfqbot.errors import EX_CONFIG, ConfigError
from rfqbot.venue.profiles import VenueProfile
from rfqbot.venue.rest import RestClient
from tests.cli_runner import run_cli


def junk_pem(tmp_path: Path) -> Path:
    """The reviewer's repro: ``echo garbage > junk.pem``."""
    path = tmp_path / "junk.pem"
    path.write_text("garbage\n")
    return path


def simulator_config(tmp_path: Path, ca_file: Path) -> Path:
    config = tmp_path / "c.yaml"
    config.write_text(f'venue:\n  name: simulator\n  ca_file: "{ca_file}"\n')
    return config


def test_a_file_that_is_not_a_pem_ca_is_a_config_error_with_file_line_and_key(tmp_path: Path) -> None:
    junk = junk_pem(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config_text(f'venue:\n  name: simulator\n  ca_file: "{junk}"\n', file="c.yaml")
    err = caught.value
    assert (err.file, err.line, err.key) == ("c.yaml", 3, "venue.ca_file")
    assert str(err).startswith(f"c.yaml:3: venue.ca_file: CA file '{junk}' is not a PEM CA certificate bundle "
                               "(SSL said: [X509: NO_CERTIFICATE_OR_CRL_FOUND]")
    assert "_ssl.c" not in str(err) and "point it at the PEM file" in str(err)


def test_a_truncated_pem_is_a_config_error(tmp_path: Path) -> None:
    cut = tmp_path / "cut.pem"
    cut.write_text("-----BEGIN CERTIFICATE-----\n")
    with pytest.raises(ConfigError, match="is not a PEM CA certificate bundle") as caught:
        load_config_text(f'venue:\n  ca_file: "{cut}"\n', file="c.yaml")
    assert caught.value.key == "venue.ca_file"


def test_a_real_ca_file_loads(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    assert load_config_text(f'venue:\n  ca_file: "{ca_file}"\n', file="c.yaml").venue.ca_file == str(ca_file)


@pytest.mark.parametrize("command", [("check-config",), ("pairs",)])
def test_commands_exit_78_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          command: tuple[str, ...]) -> None:
    config = simulator_config(tmp_path, junk_pem(tmp_path))
    code, _, err = run_cli(capsys, *command, "--config", str(config))
    assert code == EX_CONFIG
    assert f"{config}:3: venue.ca_file: CA file" in err and "Traceback" not in err and "SSLError" not in err


def test_rest_client_names_the_file_when_it_changed_after_the_check(tmp_path: Path) -> None:
    junk = junk_pem(tmp_path)
    profile = VenueProfile("simulator", "https://127.0.0.1:8443", "wss://127.0.0.1:8443", "X-HK-APIKEY",
                           ca_file=str(junk))
    with pytest.raises(ConfigError) as caught:
        RestClient(profile)
    assert caught.value.key == "venue.ca_file" and caught.value.exit_code == EX_CONFIG
    assert f"CA file '{junk}' is not a PEM CA certificate bundle" in str(caught.value)


def test_rest_client_names_a_ca_file_that_vanished(tmp_path: Path) -> None:
    gone = tmp_path / "gone.pem"
    profile = VenueProfile("simulator", "https://127.0.0.1:8443", "wss://127.0.0.1:8443", "X-HK-APIKEY",
                           ca_file=str(gone))
    with pytest.raises(ConfigError, match=f"CA file '{gone}' cannot be read"):
        RestClient(profile)
