"""The strategy interface: facts in, a verdict out.

A strategy is pure: it gets a ``DecisionContext`` (the RFQ, its ranked quotes, the market
context and the venue time) and returns a ``Verdict`` with a human-readable reason. No I/O, no
clock reads, no globals, so the same journal replayed through the same config gives the same
decisions, and a strategy can be unit-tested with plain values.

Parameters are declared, not parsed by hand: each strategy lists ``Param`` specs; ``Strategy.
from_config`` validates a YAML step against them and raises ``ConfigError`` naming
``strategies.<pair>[i].<name>`` and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Mapping

from rfqbot.errors import ConfigError
from rfqbot.records import Quote, QuoteMode, Side

# --- the facts a strategy sees ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RfqView:
    """The RFQ as the strategy sees it: pair, the account's side, amounts, mode, expiry."""

    rfq_id: str
    pair: str
    side: Side
    buy_ccy: str
    sell_ccy: str
    buy_amount: Decimal | None = None
    sell_amount: Decimal | None = None
    mode: QuoteMode = QuoteMode.UNKNOWN
    expires_ms: int | None = None
    created_ms: int | None = None

    @property
    def base(self) -> str:
        return self.pair.split("/", 1)[0]

    @property
    def quote_ccy(self) -> str:
        return self.pair.split("/", 1)[1]


@dataclass(frozen=True, slots=True)
class ReferencePrice:
    """A reference price for a pair (quote ccy per base) and when it was observed (venue ms)."""

    price: Decimal
    at_ms: int
    source: str

    def age_ms(self, now_ms: int) -> int:
        return max(0, now_ms - self.at_ms)


@dataclass(frozen=True, slots=True)
class MarketContext:
    """What the market says around the RFQ: reference prices by source, recent public quotes."""

    references: Mapping[str, ReferencePrice] = field(default_factory=lambda: MappingProxyType({}))
    recent_quotes: tuple[Quote, ...] = ()


@dataclass(frozen=True, slots=True)
class DecisionContext:
    """Everything a strategy may use. ``quotes`` are ranked best first (venue ranking)."""

    rfq: RfqView
    quotes: tuple[Quote, ...]
    market: MarketContext
    now_ms: int

    def better(self, a: Decimal, b: Decimal) -> bool:
        """True if price ``a`` is strictly better than ``b`` for the account's side."""
        return a < b if self.rfq.side is Side.BUY_BASE else a > b


def trade_amounts(rfq: RfqView, quote: Quote) -> dict[str, Decimal]:
    """Per-currency amounts accepting ``quote`` would trade: the quote's amounts, else the RFQ's;
    a missing side is derived from the price (quote currency per base). Unknown ones are left out."""
    buy_ccy, sell_ccy = quote.buy_ccy or rfq.buy_ccy, quote.sell_ccy or rfq.sell_ccy
    buy = quote.buy_amount if quote.buy_amount is not None else rfq.buy_amount
    sell = quote.sell_amount if quote.sell_amount is not None else rfq.sell_amount
    if quote.price > 0 and buy_ccy and sell_ccy:
        buying_base = buy_ccy == rfq.base
        if buy is None and sell is not None:
            buy = sell / quote.price if buying_base else sell * quote.price
        elif sell is None and buy is not None:
            sell = buy * quote.price if buying_base else buy / quote.price
    out: dict[str, Decimal] = {}
    if buy_ccy and buy is not None:
        out[buy_ccy] = buy
    if sell_ccy and sell is not None:
        out[sell_ccy] = sell
    return out


# --- the verdict ---------------------------------------------------------------------------

VerdictKind = Literal["allow", "accept", "decline", "wait", "pass"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """One strategy's answer.

    - ``allow``: quotes in ``rejected`` are not acceptable (with a reason each); the rest are.
    - ``accept``: this strategy wants exactly ``quote_id`` (others are not allowed by it).
    - ``decline``: no accept now, with a reason; ``quote_id`` names a manual quote to decline
      at the venue (non-manual quotes cannot be declined, only left to expire).
    - ``wait``: no accept before ``until_ms`` (venue time); re-evaluated then.
    - ``pass``: no opinion; allows every quote.
    """

    kind: VerdictKind
    reason: str
    quote_id: str | None = None
    until_ms: int | None = None
    rejected: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def allow(cls, reason: str, rejected: Mapping[str, str] | None = None) -> "Verdict":
        return cls("allow", reason, rejected=MappingProxyType(dict(rejected or {})))

    @classmethod
    def accept(cls, quote_id: str, reason: str) -> "Verdict":
        return cls("accept", reason, quote_id=quote_id)

    @classmethod
    def decline(cls, reason: str, quote_id: str | None = None) -> "Verdict":
        return cls("decline", reason, quote_id=quote_id)

    @classmethod
    def wait(cls, until_ms: int, reason: str) -> "Verdict":
        return cls("wait", reason, until_ms=int(until_ms))

    @classmethod
    def pass_(cls, reason: str = "no opinion") -> "Verdict":
        return cls("pass", reason)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "reason": self.reason}
        if self.quote_id is not None:
            out["quote_id"] = self.quote_id
        if self.until_ms is not None:
            out["until_ms"] = self.until_ms
        if self.rejected:
            out["rejected"] = dict(self.rejected)
        return out


# --- declared parameters --------------------------------------------------------------------

_REQUIRED: Any = object()
ParamKind = Literal["decimal", "int", "str", "bool", "str_list", "decimal_map"]


@dataclass(frozen=True, slots=True)
class Param:
    """A declared strategy parameter: its type, default (or required), bounds and meaning."""

    name: str
    kind: ParamKind
    doc: str
    default: Any = _REQUIRED
    minimum: Decimal | int | None = None
    maximum: Decimal | int | None = None
    choices: tuple[str, ...] | None = None
    # Exclusive lower bound: a price must be greater than 0, and "at least 0" would say 0 is fine.
    above: Decimal | int | None = None

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def describe(self) -> str:
        """What is allowed, for error messages and the strategy reference: one wording whether the
        value was not a number or out of range, bounds before the example so they read as one."""
        text = {"decimal": "a decimal number", "int": "an integer", "str": "text", "bool": "true or false",
                "str_list": "a list of names", "decimal_map": "a mapping of currency to decimal number"}[self.kind]
        if self.choices:
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        bounds = [f"{word} {bound}" for word, bound in (("greater than", self.above), ("at least", self.minimum),
                                                        ("at most", self.maximum)) if bound is not None]
        if bounds:
            text += " " + " and ".join(bounds)
        example = {"decimal": "70000.5", "decimal_map": "{BTC: 0.5}"}.get(self.kind)
        return f"{text} (e.g. {example})" if example and not self.choices else text

    def convert(self, value: Any, key: str, file: str | None) -> Any:
        """Validate and convert a YAML value; raise ConfigError(key=...) saying what is allowed."""

        def bad(why: str) -> ConfigError:
            return ConfigError(f"{why}; {self.name} must be {self.describe()}", file=file, key=key)

        if self.kind == "decimal":
            result: Any = _exact_decimal(value)
            if result is None:
                raise bad(f"got {value!r}" + (" (a binary float loses digits; write it as text)"
                                              if isinstance(value, float) else ""))
        elif self.kind == "decimal_map":
            if not isinstance(value, Mapping) or not value:
                raise bad(f"got {value!r}")
            result = {}
            for ccy, amount in value.items():
                number = _exact_decimal(amount)
                if not isinstance(ccy, str) or not ccy.isalnum() or ccy.upper() != ccy:
                    raise bad(f"currency {ccy!r} is not upper-case letters and digits like BTC")
                if number is None:
                    raise bad(f"{ccy}: got {amount!r}")
                if not self._in_bounds(number):
                    raise bad(f"{ccy}: got {amount!r}")
                result[ccy] = number
            return MappingProxyType(result)
        elif self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise bad(f"got {value!r}")
            result = value
        elif self.kind == "bool":
            if not isinstance(value, bool):
                raise bad(f"got {value!r}")
            result = value
        elif self.kind == "str":
            if not isinstance(value, str) or not value:
                raise bad(f"got {value!r}")
            if self.choices and value not in self.choices:
                raise bad(f"got {value!r}")
            result = value
        else:
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise bad(f"got {value!r}")
            result = tuple(value)
        if not self._in_bounds(result):
            raise bad(f"got {value!r}")
        return result

    def _in_bounds(self, number: Any) -> bool:
        """Within ``above`` (exclusive), ``minimum`` and ``maximum`` (inclusive), where given."""
        return ((self.above is None or number > self.above) and (self.minimum is None or number >= self.minimum)
                and (self.maximum is None or number <= self.maximum))


def _exact_decimal(value: Any) -> Decimal | None:
    """A finite Decimal from a Decimal, int or numeric text; None for anything else (floats included:
    the config loader builds YAML numbers as Decimal, so a float here came from code and is inexact)."""
    if isinstance(value, bool) or isinstance(value, float):
        return None
    try:
        result = (value if isinstance(value, Decimal) else
                  Decimal(str(value).strip()) if isinstance(value, (int, str)) else None)
    except InvalidOperation:
        return None
    return result if result is not None and result.is_finite() else None


def required() -> Any:
    """Marker for ``Param(default=required())``; the same as leaving ``default`` out."""
    return _REQUIRED


# --- the base class ----------------------------------------------------------------------


class Strategy:
    """Base of every strategy. Subclasses set ``name``, ``params`` and implement ``evaluate``.

    Parameter values arrive as attributes named after their ``Param`` (``self.limit_price``).
    ``evaluate`` must be pure: use only ``ctx`` and ``self``'s parameters.
    """

    name: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()

    def __init__(self, **values: Any) -> None:
        for param in self.params:
            setattr(self, param.name, values.get(param.name, None if param.required else param.default))
        self.check()

    def check(self) -> None:
        """Cross-parameter validation; raise ValueError with a message a user can act on."""

    @classmethod
    def from_config(cls, step: Mapping[str, Any], *, key: str, file: str | None = None) -> "Strategy":
        """Build from a YAML step (``use:`` plus parameters); ``key`` is ``strategies.<pair>[i]``."""
        known = {p.name: p for p in cls.params}
        unknown = sorted(str(k) for k in step if k != "use" and k not in known)
        if unknown:
            allowed = ", ".join(sorted(known)) or "none"
            raise ConfigError(f"unknown parameter {unknown[0]!r} for strategy {cls.name!r}; allowed: {allowed}",
                              file=file, key=f"{key}.{unknown[0]}")
        values: dict[str, Any] = {}
        for param in cls.params:
            if param.name in step and step[param.name] is not None:
                values[param.name] = param.convert(step[param.name], f"{key}.{param.name}", file)
            elif param.required:
                raise ConfigError(f"missing required parameter; {param.name} must be {param.describe()} "
                                  f"({param.doc})", file=file, key=f"{key}.{param.name}")
        try:
            return cls(**values)
        except ValueError as exc:
            raise ConfigError(str(exc), file=file, key=key) from None

    def evaluate(self, ctx: DecisionContext) -> Verdict:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Name and parameter values, for the journal and ``check-config`` output."""
        return {"use": self.name, **{p.name: _plain(getattr(self, p.name)) for p in self.params}}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value
