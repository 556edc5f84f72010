"""The switches faults flip, read by the REST and stream layers. Plain data, loop thread only."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FaultState:
    silent: set[str] = field(default_factory=set)               # "public" / "private"
    duplicate: dict[str, int] = field(default_factory=dict)     # stream -> frames to send twice
    reorder_updates: int = 0                                    # rfqUpdates pairs to swap
    http_5xx: list[tuple[str, int, bool]] = field(default_factory=list)  # (path, status, applied)
    delay_s: float = 0.0                                        # real seconds added to REST
    delay_path: str | None = None                               # only paths containing this
    delay_count: int | None = None                              # None: until cleared
    forced_status: list[tuple[int, bool]] = field(default_factory=list)  # (429|418, penalty)
