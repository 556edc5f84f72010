"""Simulator configuration: one dataclass tree, filled from defaults, sim.yaml and flags.

The simulator is an independent implementation of the venue, so this module deliberately knows
nothing of rfqbot's own config. Durations are *nominal venue seconds*: the simulator divides them
by ``time_scale`` so a 60-minute listen key can expire in a test within seconds.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import types
import typing
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

class SimConfigError(ValueError):
    """A bad simulator setting. Names the key (``pairs[0].base_precision``) and, when the value
    came from a file, the file, so the user knows exactly what to edit."""

    def __init__(self, key: str | None, problem: str, file: str | None = None,
                 line: int | None = None) -> None:
        self.key, self.problem, self.file, self.line = key, problem, file, line
        where = [f"{file}:{line}" if file and line else file or "", key or ""]
        prefix = ": ".join(part for part in where if part)
        super().__init__(f"{prefix}: {problem}" if prefix else problem)

    def in_file(self, file: str) -> SimConfigError:
        return SimConfigError(self.key, self.problem, file, self.line)


DEFAULT_LP_NAMES = ("WX", "GSR", "B2C2", "Wintermute", "Cumberland", "Flowdesk", "Keyrock", "QCP")


@dataclass
class PairConfig:
    """One Market Place pair, with the fields the venue's get-pairs example shows."""

    base: str
    quote: str
    base_precision: str
    quote_precision: str
    min_base: str
    max_base: str
    min_quote: str
    max_quote: str
    reference_price: str
    retail_allowed: bool = True
    trading_status: str = "OPENED"
    is_sto: int | None = 0

    @property
    def symbol(self) -> str:
        """The spot symbol (BTCUSDT) used on the spot reference-data topics."""
        return f"{self.base}{self.quote}"


def default_pairs() -> list[PairConfig]:
    """The three pairs of the venue's get-pairs example, with a plausible reference price."""
    return [
        PairConfig("USDC", "USD", "0.0001", "0.01", "1.65", "100000", "10", "100000", "1.0001",
                   retail_allowed=False, is_sto=None),
        PairConfig("BTC", "USDT", "0.00001", "0.00001", "0.001", "10000000", "10", "10000000",
                   "106000"),
        PairConfig("ETH", "USDT", "0.0001", "0.0001", "0", "37.0548", "1", "100000", "3800",
                   retail_allowed=False),
    ]


@dataclass
class LpConfig:
    """A simulated liquidity provider: how fast, how wide and how long it quotes."""

    name: str
    latency_ms: int = 300          # mean delay from RFQ creation to its first quote
    latency_jitter_ms: int = 200   # uniform +/- around latency_ms
    spread_bps: str = "5"          # half-spread around the reference price
    noise_bps: str = "3"           # uniform +/- noise on top of the spread
    quote_lifetime_s: int = 60     # how long each quote stays valid
    mode: str = "real-time"        # real-time | delayed (settlement type of its quotes)
    confirm_ms: int = 200          # LP confirmation delay after an accept
    requote: bool = True           # quote again when its quote expires while the RFQ is new
    manual: bool = False           # manual quotes: manual-order -> manual-order-confirmation
    manual_delay_ms: int = 1500    # manual-order -> manual quote delay
    enabled: bool = True


def default_lps(count: int) -> list[LpConfig]:
    """``count`` LPs with distinct names and behaviours; the second one settles delayed."""
    lps = []
    for index in range(count):
        name = DEFAULT_LP_NAMES[index] if index < len(DEFAULT_LP_NAMES) else f"LP{index + 1}"
        lps.append(LpConfig(
            name=name,
            latency_ms=150 + 250 * index,
            spread_bps=str(4 + 2 * index),
            mode="delayed" if index == 1 else "real-time",
        ))
    return lps


@dataclass
class SimConfig:
    """Everything the simulator can be told. Defaults mirror the venue documents."""

    host: str = "127.0.0.1"
    port: int = 0
    allow_remote: bool = False             # listen on a non-loopback address (no auth on control!)
    tls: bool = True
    seed: int = 1
    lps: int = 4
    time_scale: float = 1.0
    api_key: str | None = None
    api_secret: str | None = None
    api_key_header: str = "X-HK-APIKEY"
    accept_both_key_headers: bool = True   # X-HK-APIKEY and X-APIKEY both appear in the documents
    ground_truth_path: str | None = None
    truth_in_memory: bool = True           # False: truth() reads the file (long runs)
    ca_dir: str | None = None              # where ca.pem is written (a temp dir if None)
    background_rfqs_per_min: float = 6.0
    background_accept_ratio: float = 0.5
    recv_window_default_ms: int = 5000
    rate_limits: bool = True
    query_per_s: int = 2
    order_per_s: int = 10
    penalty_s: float = 60.0
    listen_key_life_s: float = 3600.0
    private_ping_interval_s: float = 30.0
    idle_close_s: float = 3600.0
    bestquote_window_s: float = 3.0
    bestquote_min_quotes: int = 3
    settlement_s: float = 5.0              # how long delayed settlement stays processing
    reference_tick_s: float = 1.0          # random-walk step and spot-data interval
    reference_step_bps: str = "2"
    spot_streams: bool = True
    pairs: list[PairConfig] = field(default_factory=default_pairs)
    lp_configs: list[LpConfig] | None = None   # None: default_lps(lps)
    balances: dict[str, str] = field(default_factory=lambda: {
        "BTC": "10", "ETH": "200", "USDT": "1000000", "USD": "1000000", "USDC": "1000000"})

    def effective_lps(self) -> list[LpConfig]:
        return list(self.lp_configs) if self.lp_configs is not None else default_lps(self.lps)

    def validate(self) -> None:
        """Raise SimConfigError naming the key and what to do, before anything starts.

        Types are checked here too (not only when reading YAML) because flags and embedding
        code set fields directly; a wrong type must not surface later as a traceback.
        """
        _check_fields(self, "", skip=("pairs", "lp_configs"))
        if self.time_scale <= 0:
            raise SimConfigError("time_scale", f"must be > 0 (got {self.time_scale}); "
                                 "use 1 for real time, 10 for ten times faster")
        if self.lps < 0:
            raise SimConfigError("lps", f"must be >= 0 (got {self.lps})")
        if not 0 <= self.port <= 65535:
            raise SimConfigError("port", f"must be 0..65535 (got {self.port}); 0 picks a free port")
        if (self.api_key is None) != (self.api_secret is None):
            raise SimConfigError("api_key", "give both api_key and api_secret, or neither to have "
                                 "them generated")
        if not self.allow_remote and not is_loopback_host(self.host):
            raise SimConfigError("host", f"{self.host!r} is not a loopback address. The control "
                                 "endpoint has no authentication and the printed credentials are "
                                 "valid, so anyone who can reach the port can drive this venue. "
                                 "Use 127.0.0.1, or pass --allow-remote (allow_remote: true) if "
                                 "you really mean it")
        _check_decimal(self.reference_step_bps, "reference_step_bps")
        for ccy, amount in self.balances.items():
            _check_decimal(amount, f"balances.{ccy}")
        if not isinstance(self.pairs, list) or not self.pairs:
            raise SimConfigError("pairs", "must be a non-empty list of pairs")
        for index, pair in enumerate(self.pairs):
            where = f"pairs[{index}]"
            if not isinstance(pair, PairConfig):
                raise SimConfigError(where, "must be a PairConfig")
            _check_fields(pair, where + ".")
            for name in ("base_precision", "quote_precision", "min_base", "max_base",
                         "min_quote", "max_quote", "reference_price"):
                _check_decimal(getattr(pair, name), f"{where}.{name}")
        for index, lp in enumerate(self.effective_lps()):
            where = f"lps[{index}]"
            if not isinstance(lp, LpConfig):
                raise SimConfigError(where, "must be an LpConfig")
            _check_fields(lp, where + ".")
            if lp.mode not in ("real-time", "delayed"):
                raise SimConfigError(f"{where}.mode", f"lp {lp.name}: mode must be real-time or "
                                     f"delayed, got {lp.mode!r}")
            _check_decimal(lp.spread_bps, f"{where}.spread_bps")
            _check_decimal(lp.noise_bps, f"{where}.noise_bps")


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_decimal(value: Any, key: str) -> None:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise SimConfigError(key, f"{value!r} is not a decimal number; write it like \"0.0001\"") \
            from None
    if not number.is_finite():
        raise SimConfigError(key, f"must be a finite number, got {value!r}")


def _type_name(hint: Any) -> str:
    return {bool: "true or false", int: "a whole number", float: "a number", str: "text"}.get(
        hint, getattr(hint, "__name__", str(hint)))


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """``value`` as the field type ``hint`` wants, or SimConfigError saying what was expected.

    Numbers written for text fields (``spread_bps: 1.5``) become their text; nothing else is
    converted, so ``time_scale: fast`` or ``base_precision: true`` is an error, not a surprise.
    """
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if value is None:
            return None
        return _coerce(value, options[0], key)
    if origin is dict:
        if not isinstance(value, dict):
            raise SimConfigError(key, f"must be a mapping, got {value!r}")
        key_hint, value_hint = typing.get_args(hint)
        return {str(k): _coerce(v, value_hint, f"{key}.{k}") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise SimConfigError(key, f"must be a list, got {value!r}")
        return value
    wrong = SimConfigError(key, f"must be {_type_name(hint)}, got {value!r}")
    if hint is bool:
        if not isinstance(value, bool):
            raise wrong
        return value
    if isinstance(value, bool):
        raise wrong
    if hint is int:
        if not isinstance(value, int):
            raise wrong
        return value
    if hint is float:
        if not isinstance(value, (int, float)):
            raise wrong
        return float(value)
    if hint is str:
        if isinstance(value, (int, float, Decimal)):
            return str(value)
        if not isinstance(value, str):
            raise wrong
        return value
    return value


def _check_fields(obj: Any, prefix: str, skip: tuple[str, ...] = ()) -> None:
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        if f.name not in skip:
            value = getattr(obj, f.name)
            coerced = _coerce(value, hints[f.name], prefix + f.name)
            if coerced is not value and type(coerced) is not type(value):
                # text given a number: keep it as the canonical text form
                setattr(obj, f.name, coerced)


def _unknown_key(key: str, known: set[str], where: str) -> SimConfigError:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known: {sorted(known)}"
    return SimConfigError(where or None, f"unknown key {key!r}{hint}")


def _build(cls: type, raw: Any, where: str) -> Any:
    """One ``cls`` from a YAML mapping: unknown, missing and mistyped keys are named."""
    if not isinstance(raw, dict):
        raise SimConfigError(where, f"must be a mapping of settings, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            raise _unknown_key(str(key), set(fields), where)
    missing = [name for name, f in fields.items() if name not in raw
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise SimConfigError(where, f"missing key(s) {', '.join(missing)}")
    return cls(**{k: _coerce(v, hints[k], f"{where}.{k}") for k, v in raw.items()})


def load_yaml(path: str | Path, base: SimConfig | None = None) -> SimConfig:
    """Read sim.yaml over ``base``; every error names the file and the key (or the line)."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SimConfigError(None, f"cannot read it ({exc.strerror or exc}); check the path "
                             "given to --config", file) from None
    except UnicodeDecodeError:
        raise SimConfigError(None, "is not UTF-8 text; save it as UTF-8", file) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise SimConfigError(None, f"YAML syntax error: {problem}",
                             file, mark.line + 1 if mark is not None else None) from None
    try:
        return _from_mapping({} if raw is None else raw, base)
    except SimConfigError as exc:
        raise exc.in_file(file) from None


def _from_mapping(raw: Any, base: SimConfig | None) -> SimConfig:
    if not isinstance(raw, dict):
        raise SimConfigError(None, f"the top level must be a mapping of settings, got {raw!r}")
    config = dataclasses.replace(base) if base else SimConfig()
    hints = typing.get_type_hints(SimConfig)
    known = {f.name for f in dataclasses.fields(SimConfig)} - {"lp_configs"}
    for key, value in raw.items():
        if key == "lps" and isinstance(value, list):
            config.lp_configs = [_build(LpConfig, item, f"lps[{i}]") for i, item in enumerate(value)]
            config.lps = len(config.lp_configs)
        elif key == "lps":
            if isinstance(value, bool) or not isinstance(value, int):
                raise SimConfigError("lps", "must be a number of LPs or a list of LP settings, "
                                     f"got {value!r}")
            config.lps, config.lp_configs = value, None
        elif key == "pairs":
            if not isinstance(value, list):
                raise SimConfigError("pairs", f"must be a list of pairs, got {value!r}")
            config.pairs = [_build(PairConfig, item, f"pairs[{i}]") for i, item in enumerate(value)]
        elif key in known:
            setattr(config, key, _coerce(value, hints[key], str(key)))
        else:
            raise _unknown_key(str(key), known, "")
    config.validate()
    return config
