"""Simulator configuration: one dataclass tree, filled from defaults, sim.yaml and flags.

The simulator is an independent implementation of the venue, so this module deliberately knows
nothing of rfqbot's own config. Durations are *nominal venue seconds*: the simulator divides them
by ``time_scale`` so a 60-minute listen key can expire in a test within seconds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

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
        """Raise ValueError naming the field and what to do, before anything starts."""
        if self.time_scale <= 0:
            raise ValueError(f"time_scale must be > 0 (got {self.time_scale}); use 1 for real time")
        if self.lps < 0:
            raise ValueError(f"lps must be >= 0 (got {self.lps})")
        if (self.api_key is None) != (self.api_secret is None):
            raise ValueError("give both api_key and api_secret, or neither to have them generated")
        for lp in self.effective_lps():
            if lp.mode not in ("real-time", "delayed"):
                raise ValueError(f"lp {lp.name}: mode must be real-time or delayed, got {lp.mode!r}")
        for pair in self.pairs:
            for name in ("base_precision", "quote_precision", "min_base", "max_base",
                         "min_quote", "max_quote", "reference_price"):
                Decimal(str(getattr(pair, name)))


def _build(cls: type, raw: dict[str, Any], where: str) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(raw) - names
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(names)}")
    return cls(**{k: (str(v) if isinstance(v, float) else v) for k, v in raw.items()})


def load_yaml(path: str | Path, base: SimConfig | None = None) -> SimConfig:
    """Read sim.yaml over ``base``; unknown keys are errors that name the file and key."""
    text = Path(path).read_text(encoding="utf-8")
    raw = yaml.safe_load(text) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: top level must be a mapping")
    config = dataclasses.replace(base) if base else SimConfig()
    known = {f.name for f in dataclasses.fields(SimConfig)}
    for key, value in raw.items():
        if key == "lps" and isinstance(value, list):
            config.lp_configs = [_build(LpConfig, item, f"{path}: lps[{i}]")
                                 for i, item in enumerate(value)]
            config.lps = len(config.lp_configs)
        elif key == "pairs":
            config.pairs = [_build(PairConfig, item, f"{path}: pairs[{i}]")
                            for i, item in enumerate(value)]
        elif key in known:
            setattr(config, key, value)
        else:
            raise ValueError(f"{path}: unknown key {key!r}; known: {sorted(known)}")
    config.validate()
    return config
