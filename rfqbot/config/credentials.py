"""API credentials: from systemd credentials or the environment, never from the YAML.

``$CREDENTIALS_DIRECTORY`` (systemd ``LoadCredential=``) wins over environment variables
because it is the safer channel: the values never appear in the process environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from rfqbot.errors import ConfigError

if TYPE_CHECKING:
    from rfqbot.config.schema import Settings


@dataclass(frozen=True)
class Credentials:
    """API key and secret. Never printed: ``repr``/``str`` show only that they are set."""

    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    source: str = "environment"

    def __repr__(self) -> str:
        return f"Credentials(api_key='***', api_secret='***', source={self.source!r})"

    __str__ = __repr__


def load_credentials(settings: "Settings", env: Mapping[str, str] | None = None) -> Credentials:
    """API credentials: ``$CREDENTIALS_DIRECTORY/api-key|api-secret`` win over the env vars."""
    environ = os.environ if env is None else env
    names = settings.credentials
    values: dict[str, str] = {}
    sources: set[str] = set()
    cred_dir = environ.get("CREDENTIALS_DIRECTORY")
    for field_name, file_name, env_name in (("api_key", "api-key", names.api_key_env),
                                            ("api_secret", "api-secret", names.api_secret_env)):
        if cred_dir:
            candidate = Path(cred_dir) / file_name
            if candidate.is_file():
                try:
                    value = candidate.read_text(encoding="utf-8").strip()
                except (OSError, UnicodeDecodeError) as exc:
                    raise ConfigError(f"cannot read systemd credential {candidate}: {exc}",
                                      key=f"credentials.{field_name}_env") from None
                if value:
                    values[field_name] = value
                    sources.add("systemd credentials")
                    continue
        value = (environ.get(env_name) or "").strip()
        if value:
            values[field_name] = value
            sources.add("environment")
            continue
        where = f"set environment variable {env_name}"
        where += (f" or create {Path(cred_dir) / file_name}" if cred_dir
                  else f" (or provide '{file_name}' with systemd LoadCredential=)")
        raise ConfigError(f"no API {field_name.split('_')[1]} found: {where}",
                          file=settings.file, key=f"credentials.{field_name}_env")
    from rfqbot.logs import register_secret

    register_secret(values["api_key"])
    register_secret(values["api_secret"])
    return Credentials(values["api_key"], values["api_secret"], " + ".join(sorted(sources)))
