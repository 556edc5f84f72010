"""Faults and operator commands, callable from Python (any thread) and from POST /sim/control.

Each public method of ``Faults`` has a twin ``_do_<name>`` that runs on the simulator's loop;
the control endpoint dispatches ``{"action": "<name>", ...}`` to the same twin, so tests in or
out of process exercise exactly the same code.
"""

from __future__ import annotations

import inspect
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rfqbot.sim import wirejson

if TYPE_CHECKING:
    from rfqbot.sim.server import Simulator

JUNK_KINDS = ("malformed", "truncated", "binary", "unknown_topic", "duplicate")


class Faults:
    """``sim.faults.<name>(...)``; see the README, section "The venue simulator", for the catalogue."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim

    def _run(self, name: str, **kwargs: Any) -> Any:
        return self._sim.call(getattr(self, f"_do_{name}"), **kwargs)

    async def dispatch(self, command: dict[str, Any]) -> Any:
        """Run ``{"action": name, **kwargs}`` on the loop (the control endpoint's entry)."""
        args = dict(command)
        name = args.pop("action")
        target = getattr(self, f"_do_{name}", None)
        if target is None:
            known = sorted(n[4:] for n in dir(self) if n.startswith("_do_"))
            raise ValueError(f"unknown action {name!r}; known actions: {known}")
        try:
            inspect.signature(target).bind(**args)
        except TypeError as exc:
            raise ValueError(f"action {name!r}: {exc}") from None
        result = target(**args)
        if inspect.isawaitable(result):
            result = await result
        return result

    # ------------------------------------------------------------------ streams
    def close_stream(self, stream: str = "both", abrupt: bool = False) -> int:
        """Close public/private/both streams (close frame, or TCP abort when abrupt)."""
        return self._run("close_stream", stream=stream, abrupt=abrupt)

    async def _do_close_stream(self, stream: str = "both", abrupt: bool = False) -> int:
        self._sim.state.truth.record("fault", action="close_stream", stream=stream, abrupt=abrupt)
        closed = 0
        for name in _streams(stream):
            closed += await self._sim.state.hub.close_all(name, abrupt=abrupt)
        return closed

    def silence(self, stream: str = "both", on: bool = True) -> None:
        """Send nothing (no pushes, pongs or pings) while keeping TCP open."""
        self._run("silence", stream=stream, on=on)

    def _do_silence(self, stream: str = "both", on: bool = True) -> None:
        self._sim.state.truth.record("fault", action="silence", stream=stream, on=on)
        for name in _streams(stream):
            (self._sim.state.faults.silent.add if on else self._sim.state.faults.silent.discard)(name)

    def invalidate_listen_key(self, key: str | None = None, mode: str = "extend_fails") -> int:
        """``extend_fails``: PUT answers an error; ``mute``: stream connects but stays empty."""
        return self._run("invalidate_listen_key", key=key, mode=mode)

    def _do_invalidate_listen_key(self, key: str | None = None, mode: str = "extend_fails") -> int:
        if mode not in ("extend_fails", "mute"):
            raise ValueError("mode must be extend_fails or mute")
        entries = [e for k, e in self._sim.state.keys.keys.items() if key in (None, k)]
        for entry in entries:
            if mode == "extend_fails":
                entry.extend_fails = True
            else:
                entry.muted = True
        self._sim.state.truth.record("fault", action="invalidate_listen_key", mode=mode,
                                     count=len(entries))
        return len(entries)

    def expire_listen_key(self, key: str | None = None) -> int:
        """End listen keys now, as if their 60 minutes had passed (streams close)."""
        return self._run("expire_listen_key", key=key)

    def _do_expire_listen_key(self, key: str | None = None) -> int:
        keys = [k for k in list(self._sim.state.keys.keys) if key in (None, k)]
        return sum(self._sim.state.keys.expire_now(k) for k in keys)

    def inject(self, kind: str, stream: str = "public", count: int = 1) -> int:
        """Junk frames now (malformed/truncated/binary/unknown_topic) or duplicate the next
        ``count`` real frames (duplicate). Returns the number of connections reached (for
        duplicate: ``count``)."""
        return self._run("inject", kind=kind, stream=stream, count=count)

    def _do_inject(self, kind: str, stream: str = "public", count: int = 1) -> int:
        if kind not in JUNK_KINDS:
            raise ValueError(f"kind must be one of {JUNK_KINDS}")
        if int(count) < 1:
            raise ValueError("count must be >= 1")
        state = self._sim.state
        state.truth.record("fault", action="inject", kind=kind, stream=stream, count=count)
        if kind == "duplicate":
            for name in _streams(stream):
                state.faults.duplicate[name] = state.faults.duplicate.get(name, 0) + count
            return count
        topic = "rfqs" if stream == "public" else "rfqUpdates"
        sample = wirejson.dumps({"event": "update", "topic": topic, "data": {"rfqId": "MP1"}})
        payload: str | bytes = {
            "malformed": '{"topic": "' + topic + '", "data": {oops}',
            "truncated": sample[: len(sample) // 2],
            "binary": b"\x1f\x8b\x08\x00" + sample.encode(),
            "unknown_topic": wirejson.dumps({"event": "surprise", "topic": "weatherReport",
                                             "data": {"rain": "0.3"}}),
        }[kind]
        reached = 0
        for name in _streams(stream):
            for _ in range(count):
                connections = state.hub.inject(name, payload, kind)
            reached += connections
        return reached

    def reorder_updates(self, count: int = 1) -> None:
        """Swap the next ``count`` rfqUpdates with the update that follows each."""
        self._run("reorder_updates", count=count)

    def _do_reorder_updates(self, count: int = 1) -> None:
        self._sim.state.faults.reorder_updates += count

    # ------------------------------------------------------------------ REST
    def accept_5xx(self, applied: bool, status: int = 500, count: int = 1) -> None:
        """Next ``count`` accept-quote calls answer ``status``; the accept happens if applied."""
        self._run("accept_5xx", applied=applied, status=status, count=count)

    def _do_accept_5xx(self, applied: bool, status: int = 500, count: int = 1) -> None:
        self._do_server_error("accept-quote", applied, status, count)

    def server_error(self, path: str, applied: bool, status: int = 500, count: int = 1) -> None:
        """Next ``count`` signed requests whose path contains ``path`` (e.g. ``create-rfq``)
        answer ``status``; the request takes effect first when ``applied``."""
        self._run("server_error", path=path, applied=applied, status=status, count=count)

    def _do_server_error(self, path: str, applied: bool, status: int = 500,
                         count: int = 1) -> None:
        if not 500 <= int(status) <= 599:
            raise ValueError("status must be a 5xx code")
        self._sim.state.faults.http_5xx.extend([(path, int(status), bool(applied))] * count)

    def delay(self, seconds: float, path: str | None = None, count: int | None = None) -> None:
        """Slow REST answers by ``seconds`` (real), optionally only for paths containing
        ``path``, optionally only ``count`` times. ``delay(0)`` clears."""
        self._run("delay", seconds=seconds, path=path, count=count)

    def _do_delay(self, seconds: float, path: str | None = None, count: int | None = None) -> None:
        faults = self._sim.state.faults
        faults.delay_s, faults.delay_path, faults.delay_count = float(seconds), path, count

    def rate_limit(self, status: int = 429, count: int = 1, penalty: bool = True) -> None:
        """Force ``status`` (429 or 418) on the next ``count`` signed requests; a forced 429
        also starts the penalty minute (so the next requests get 418) unless penalty=False."""
        self._run("rate_limit", status=status, count=count, penalty=penalty)

    def _do_rate_limit(self, status: int = 429, count: int = 1, penalty: bool = True) -> None:
        if status not in (429, 418):
            raise ValueError("status must be 429 or 418")
        state = self._sim.state
        state.faults.forced_status.extend([(status, penalty and status == 429)] * count)

    # ------------------------------------------------------------------ time
    def clock_skew(self, ms: int) -> None:
        """Shift the server clock by ``ms`` (both /time and timestamp checks)."""
        self._run("clock_skew", ms=ms)

    def _do_clock_skew(self, ms: int) -> None:
        self._sim.state.clock.skew_ms = int(ms)

    def time_scale(self, factor: float) -> None:
        """Change the duration scale for everything scheduled from now on."""
        self._run("time_scale", factor=factor)

    def _do_time_scale(self, factor: float) -> None:
        if float(factor) <= 0:
            raise ValueError("factor must be > 0")
        self._sim.state.clock.time_scale = float(factor)

    def clear(self) -> None:
        """Undo every switch (silence, duplicates, reorder, 5xx, delays, forced statuses)."""
        self._run("clear")

    def _do_clear(self) -> None:
        faults = self._sim.state.faults
        faults.silent.clear()
        faults.duplicate.clear()
        faults.reorder_updates = 0
        faults.http_5xx.clear()
        faults.forced_status.clear()
        faults.delay_s, faults.delay_path, faults.delay_count = 0.0, None, None

    # ------------------------------------------------------------------ operations and LPs
    def cancel_rfq(self, rfq_id: str) -> bool:
        """Operations cancel an RFQ (status cancelled)."""
        return self._run("cancel_rfq", rfq_id=rfq_id)

    def _do_cancel_rfq(self, rfq_id: str) -> bool:
        return self._sim.state.market.cancel(rfq_id)

    def lp_reject(self, rfq_id: str) -> bool:
        """The LP rejects the accepted quote before confirming (status declined)."""
        return self._run("lp_reject", rfq_id=rfq_id)

    def _do_lp_reject(self, rfq_id: str) -> bool:
        return self._sim.state.market.lp_reject(rfq_id)

    def quote(self, rfq_id: str, price: str, lp_name: str = "TEST", lifetime_s: float = 60,
              mode: str = "real-time", confirm_s: float = 0.2, manual: bool = False,
              manual_delay_s: float = 0.0) -> str | None:
        """Make an LP quote ``price`` on ``rfq_id`` now; returns the quote id (None if the
        RFQ takes no quotes). ``manual`` starts the manual-order flow instead."""
        return self._run("quote", rfq_id=rfq_id, price=price, lp_name=lp_name,
                         lifetime_s=lifetime_s, mode=mode, confirm_s=confirm_s, manual=manual,
                         manual_delay_s=manual_delay_s)

    def _do_quote(self, rfq_id: str, price: str, lp_name: str = "TEST", lifetime_s: float = 60,
                  mode: str = "real-time", confirm_s: float = 0.2, manual: bool = False,
                  manual_delay_s: float = 0.0) -> str | None:
        market = self._sim.state.market
        rfq = market.rfqs.get(rfq_id)
        try:
            if not Decimal(str(price)).is_finite() or Decimal(str(price)) <= 0:
                raise ValueError
        except (ArithmeticError, ValueError):
            raise ValueError(f"price must be a positive decimal string, got {price!r}") from None
        if rfq is None:
            raise ValueError(f"unknown rfq_id {rfq_id!r}")
        if mode not in ("real-time", "delayed"):
            raise ValueError("mode must be real-time or delayed")
        if manual:
            started = market.start_manual(rfq, lp_name, Decimal(str(price)), mode,
                                          float(manual_delay_s), float(lifetime_s),
                                          float(confirm_s))
            return "manual-order" if started else None
        quote = market.add_quote(rfq, lp_name, Decimal(str(price)), mode, float(lifetime_s),
                                 float(confirm_s))
        return quote.quote_id if quote else None


def _streams(stream: str) -> tuple[str, ...]:
    if stream == "both":
        return ("public", "private")
    if stream not in ("public", "private"):
        raise ValueError("stream must be public, private or both")
    return (stream,)
