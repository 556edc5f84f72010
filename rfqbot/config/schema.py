"""Configuration: YAML -> typed, validated ``Settings``; credentials from env or systemd.

Strict on purpose: an unknown key is an error (a typo must never be silently ignored), every
error names the file, the key path (``strategies.BTC/USDT[0].limit_price``) and the YAML line,
and YAML floats are built as ``Decimal`` so ``limit_price: 70000.1`` is exactly that.
Secrets never live in the YAML; a value that looks like one is rejected.
"""

from __future__ import annotations

import importlib
import os
import re
import typing
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from rfqbot.config import spot_sources
from rfqbot.config.yaml_reader import format_path, load_yaml_with_lines, parse_duration  # noqa: F401 (re-export)
from rfqbot.config.checks import check_inline_secrets, pydantic_errors_to_config_error
from rfqbot.venue.tls import ca_context
from rfqbot.config.credentials import Credentials, load_credentials  # noqa: F401 (part of this API)
from rfqbot.errors import ConfigError
from rfqbot.venue.profiles import PROFILES, VenueProfile

DEFAULT_CONFIG_FILE = "config.yaml"
ProfileName = Literal["hashkey-sg", "hashkey-sg-sandbox", "hashkey-global", "hashkey-global-sandbox", "simulator"]


def _takes_default_when_empty(model: type[BaseModel], key: Any) -> bool:
    """A known, optional key whose value is a section, mapping or list (and cannot be None)."""
    field = model.model_fields.get(key) if isinstance(key, str) else None
    if field is None or field.is_required():
        return False
    annotation = field.annotation
    if typing.get_origin(annotation) in (list, dict):
        return True
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_means_default(cls, data: Any) -> Any:
        # `risk:` or `max_rfq_amount:` with every line under it commented out is YAML null; it
        # means "the default" (README, Configuration), not "Input should be a valid dictionary".
        # Unknown keys stay, so an empty misspelt section is still reported.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None or not _takes_default_when_empty(cls, k)}
        return data


def _check_url(value: str | None, schemes: tuple[str, str]) -> str | None:
    """Plain http/ws only to loopback: TLS verification is always on towards a real venue."""
    if value is None:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"must be a URL starting with {schemes[0]}:// or {schemes[1]}://")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry a user or password (credentials come from the environment "
                         "or systemd credentials, never from the config file)")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query string or fragment: give the base URL only")
    try:
        parts.port
    except ValueError:
        raise ValueError("has a port that is not a number from 0 to 65535") from None
    if not re.fullmatch(r"[A-Za-z0-9._~/-]*", parts.path):
        raise ValueError(f"path {parts.path!r} may hold only letters, digits and . _ ~ / - "
                         "(it is sent as written on every request)")
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme == schemes[0] and not loopback:
        raise ValueError(f"plain {schemes[0]}:// is allowed only to 127.0.0.1/localhost; "
                         f"use {schemes[1]}://")
    return value.rstrip("/")


class VenueSettings(_Strict):
    name: ProfileName = "hashkey-sg-sandbox"
    rest_url: str | None = None
    ws_url: str | None = None
    api_key_header: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]+$")
    ca_file: str | None = None
    recv_window_ms: int = Field(default=5000, ge=1, le=60000)
    connect_timeout_s: Decimal = Field(default=Decimal(3), gt=0, le=60)
    read_timeout_s: Decimal = Field(default=Decimal(10), gt=0, le=300)

    @field_validator("rest_url")
    @classmethod
    def _rest_url(cls, v: str | None) -> str | None:
        return _check_url(v, ("http", "https"))

    @field_validator("ws_url")
    @classmethod
    def _ws_url(cls, v: str | None) -> str | None:
        return _check_url(v, ("ws", "wss"))

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, v: str | None) -> str | None:
        # Load it as the REST client will: a file that exists but holds no PEM CA would pass
        # here and then kill every command with an ssl.SSLError traceback (exit 1, restart loop).
        if v is not None and not Path(v).is_file():
            raise ValueError(f"CA file {v!r} does not exist or is not a file")
        if v is not None:
            ca_context(v)
        return v


_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class CredentialsSettings(_Strict):
    api_key_env: str = Field(default="RFQBOT_API_KEY", pattern=_ENV_NAME)
    api_secret_env: str = Field(default="RFQBOT_API_SECRET", pattern=_ENV_NAME)


class JournalSettings(_Strict):
    path: str = "./rfqbot-journal.db"
    # full: every commit is fsynced (survives power loss). normal (WAL): every committed decision
    # survives a process crash or kill -9, but the last commits may be lost on power loss or an
    # OS crash; it saves an fsync on the accept path. See README "Durability".
    synchronous: Literal["full", "normal"] = "full"


class LoggingSettings(_Strict):
    level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class StreamsSettings(_Strict):
    public_topics: list[Literal["rfqs", "quotes"]] = Field(default_factory=lambda: ["rfqs", "quotes"])
    spot_symbols: list[str] = Field(default_factory=list)
    ping_interval_s: int = Field(default=10, ge=1, le=300)
    public_stale_after_s: int = Field(default=30, ge=1)
    private_stale_after_s: int = Field(default=75, ge=1)
    reconnect_max_backoff_s: int = Field(default=30, ge=1, le=3600)

    @field_validator("spot_symbols")
    @classmethod
    def _symbols(cls, v: list[str]) -> list[str]:
        for symbol in v:
            if not symbol.isalnum() or symbol.upper() != symbol:
                raise ValueError(f"spot symbol {symbol!r} must be upper-case letters and digits, like BTCUSDT")
        return v


class ListenKeySettings(_Strict):
    extend_every_s: int = Field(default=1800, ge=60, le=3300)
    fresh_key_grace_s: int = Field(default=10, ge=0, le=600)


class EngineSettings(_Strict):
    min_time_left_ms: int = Field(default=2000, ge=0)
    shutdown_drain_s: int = Field(default=10, ge=0, le=600)
    accept_workers: int = Field(default=2, ge=1, le=16)
    # While idle, a dry run of the decision path (rolled back) this often keeps it in the CPU
    # caches: ~0.3 ms of one core each time. 0 = off. See rfqbot.engine.rehearsal.
    rehearse_every_ms: int = Field(default=5, ge=0, le=1000)
    # Each rehearsal also flushes the journal's (already synced) WAL file, keeping the disk's
    # flush path warm for the next decision's fsync (synchronous: full only). See Journal.warm_sync.
    rehearse_sync: bool = True


class ReconcileSettings(_Strict):
    every_s: int = Field(default=30, ge=5)


class ClockSyncSettings(_Strict):
    every_s: int = Field(default=300, ge=10)


class PairsRefreshSettings(_Strict):
    every_s: int = Field(default=300, ge=30)


class KeepWarmSettings(_Strict):
    """``GET /api/v1/ping`` this often so a pooled TLS connection is open when an accept must
    leave (an accept on a cold pool pays a TCP + TLS handshake first). 0 turns it off."""

    every_s: int = Field(default=20, ge=0, le=600)

    @field_validator("every_s")
    @classmethod
    def _off_or_sane(cls, v: int) -> int:
        if 0 < v < 5:
            raise ValueError("must be 0 (off) or at least 5 seconds (a ping uses the query rate limit)")
        return v


def _positive_amounts(v: dict[str, Decimal]) -> dict[str, Decimal]:
    for ccy, amount in v.items():
        if amount <= 0:
            raise ValueError(f"{ccy}: amount must be greater than 0, got {amount}")
    return v


class RiskSettings(_Strict):
    max_accepts_per_minute: int = Field(default=10, ge=1)
    max_open_rfqs: int = Field(default=20, ge=1)
    max_rfq_amount: dict[str, Decimal] = Field(default_factory=dict)
    daily_notional: dict[str, Decimal] = Field(default_factory=dict)
    kill_switch_file: str | None = None

    @field_validator("max_rfq_amount", "daily_notional")
    @classmethod
    def _amounts(cls, v: dict[str, Decimal]) -> dict[str, Decimal]:
        return _positive_amounts(v)


class ScheduledRfq(_Strict):
    every: str | None = None
    cron: str | None = None
    buy: str = Field(pattern=r"^[A-Z0-9]{2,15}$")
    sell: str = Field(pattern=r"^[A-Z0-9]{2,15}$")
    sell_amount: Decimal = Field(gt=0)
    mode: Literal["real-time", "delayed"]
    expire_sec: int = Field(default=600, ge=600, le=3600)
    client_id_prefix: str = Field(default="rfqbot", pattern=r"^[A-Za-z0-9_-]{1,20}$")

    @field_validator("every")
    @classmethod
    def _every(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        if v is not None:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(v)
            except ValueError as exc:
                raise ValueError(f"invalid cron expression {v!r} ({exc}); use five fields like '0 * * * *'") from None
        return v

    @model_validator(mode="after")
    def _one_schedule(self) -> "ScheduledRfq":
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of 'every' (like 30s, 5m, 1h) or 'cron' (like '0 * * * *')")
        if self.buy == self.sell:
            raise ValueError(f"buy and sell are both {self.buy}; they must differ")
        return self

    @property
    def every_s(self) -> int | None:
        return parse_duration(self.every) if self.every is not None else None


class AlertsSettings(_Strict):
    webhook_url: str | None = None
    unknown_outcome_after_s: int = Field(default=300, ge=1)
    stream_down_after_s: int = Field(default=300, ge=1)
    listen_key_failures: int = Field(default=3, ge=1)
    webhook_timeout_s: int = Field(default=5, ge=1, le=60)
    webhook_attempts: int = Field(default=5, ge=1, le=20)

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return _check_url(v, ("http", "https"))


class MetricsSettings(_Strict):
    port: int | None = Field(default=None, ge=1, le=65535)


class StatusSettings(_Strict):
    file: str | None = None  # None: next to the journal, <journal stem>.status.json
    every_s: int = Field(default=5, ge=1, le=300)
    engine_stall_after_s: int = Field(default=10, ge=1, le=600)


class Settings(_Strict):
    venue: VenueSettings = Field(default_factory=VenueSettings)
    credentials: CredentialsSettings = Field(default_factory=CredentialsSettings)
    journal: JournalSettings = Field(default_factory=JournalSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    streams: StreamsSettings = Field(default_factory=StreamsSettings)
    listen_key: ListenKeySettings = Field(default_factory=ListenKeySettings)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    reconcile: ReconcileSettings = Field(default_factory=ReconcileSettings)
    clock_sync: ClockSyncSettings = Field(default_factory=ClockSyncSettings)
    pairs_refresh: PairsRefreshSettings = Field(default_factory=PairsRefreshSettings)
    keep_warm: KeepWarmSettings = Field(default_factory=KeepWarmSettings)
    strategies: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    rfqs: list[ScheduledRfq] = Field(default_factory=list)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    status: StatusSettings = Field(default_factory=StatusSettings)

    _file: str | None = PrivateAttr(default=None)
    _chains: Any = PrivateAttr(default=None)

    @property
    def file(self) -> str | None:
        """The YAML file these settings came from (None when built in code)."""
        return self._file

    @property
    def chains(self) -> Any:
        """Compiled strategy chains (``strategies.ChainSet``), or None before strategies land."""
        return self._chains

    def profile(self) -> VenueProfile:
        """The effective venue: the named profile with ``venue.*`` overrides applied."""
        v = self.venue
        return PROFILES[v.name].with_overrides(
            rest_url=v.rest_url, ws_url=v.ws_url, api_key_header=v.api_key_header, ca_file=v.ca_file,
            recv_window_ms=v.recv_window_ms, connect_timeout_s=float(v.connect_timeout_s),
            read_timeout_s=float(v.read_timeout_s),
        )


def resolve_config_path(path: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """``--config PATH`` > ``$RFQBOT_CONFIG`` > ``./config.yaml``."""
    environ = os.environ if env is None else env
    return path or environ.get("RFQBOT_CONFIG") or DEFAULT_CONFIG_FILE


def load_config(path: str | None = None, *, env: Mapping[str, str] | None = None) -> Settings:
    """Load, validate and compile the configuration; raise ``ConfigError`` on any problem."""
    file = resolve_config_path(path, env)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("config file not found; pass --config PATH, set RFQBOT_CONFIG, or create "
                          "./config.yaml (see the shipped example)", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file: {exc}", file=file) from None
    return load_config_text(text, file=file)


def load_config_text(text: str, *, file: str = "<config>") -> Settings:
    """Validate YAML ``text`` as if read from ``file`` (for tests and reloads)."""
    data, lines = load_yaml_with_lines(text, file)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping of sections (venue:, credentials:, ...)",
                          file=file, line=1)
    check_inline_secrets(data, file, lines)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise pydantic_errors_to_config_error(exc, data, lines, file, Settings) from None
    settings._file = file
    settings._chains = _compile_strategies(settings, file, lines)
    spot_sources.check(settings, file=file, lines=lines)  # spot-reading strategies get their feed
    return settings


def _compile_strategies(settings: Settings, file: str, lines: Mapping[str, int]) -> Any:
    """Call ``strategies.compile_chains`` when the strategies package provides it."""
    try:
        module = importlib.import_module("strategies")
    except ModuleNotFoundError as exc:
        if exc.name != "strategies":
            raise
        _check_steps_have_use(settings.strategies, file, lines)
        return None
    compile_chains = getattr(module, "compile_chains", None)
    if compile_chains is None:
        _check_steps_have_use(settings.strategies, file, lines)
        return None
    try:
        return compile_chains(settings.strategies, file=file)
    except ConfigError as exc:
        if exc.line is None and exc.key:
            raise ConfigError(exc.detail, file=exc.file or file, key=exc.key,
                              line=_line_for(exc.key, lines)) from None
        raise


def _check_steps_have_use(raw: Mapping[str, list[dict[str, Any]]], file: str, lines: Mapping[str, int]) -> None:
    """The floor when the strategies package cannot compile chains: every step names a strategy."""
    for pair, steps in raw.items():
        for i, step in enumerate(steps):
            if not isinstance(step.get("use"), str) or not step["use"]:
                key = f"strategies.{pair}[{i}].use"
                raise ConfigError("every step needs 'use: <strategy name>'", file=file, key=key,
                                  line=_line_for(key, lines))


def _line_for(key: str, lines: Mapping[str, int]) -> int | None:
    """Line of ``key`` or of its nearest ancestor that has one."""
    while key:
        if key in lines:
            return lines[key]
        cut = max(key.rfind("."), key.rfind("["))
        key = key[:cut] if cut > 0 else ""
    return None


def redacted_dict(settings: Settings) -> dict[str, Any]:
    """The effective configuration as plain data for ``check-config``, secrets masked."""
    from rfqbot.logs import redact_value

    data = settings.model_dump(mode="json")
    profile = settings.profile()
    data["venue"] = {
        "name": profile.name, "rest_url": profile.rest_url, "ws_url": profile.ws_url,
        "api_key_header": profile.api_key_header, "signer": profile.signer, "ca_file": profile.ca_file,
        "recv_window_ms": profile.recv_window_ms, "connect_timeout_s": str(settings.venue.connect_timeout_s),
        "read_timeout_s": str(settings.venue.read_timeout_s),
    }
    if data["alerts"].get("webhook_url"):
        from urllib.parse import urlsplit

        parts = urlsplit(data["alerts"]["webhook_url"])
        # Webhook paths often embed a token: show only where it goes.
        data["alerts"]["webhook_url"] = f"{parts.scheme}://{parts.netloc}/***"
    return {key: redact_value(value, key) for key, value in data.items()}


__all__ = [
    "ConfigError", "Credentials", "Settings", "ScheduledRfq", "VenueSettings", "format_path", "load_config",
    "load_config_text", "load_credentials", "parse_duration", "redacted_dict", "resolve_config_path",
]
