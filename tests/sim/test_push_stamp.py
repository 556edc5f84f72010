"""The simulator stamps a push just before writing it, so no client can have read a frame
before its stamp (the tick-to-accept benchmark measures from this stamp)."""

from __future__ import annotations

import asyncio
import time

from rfqbot.sim.streams import Connection
from rfqbot.sim.truth import GroundTruth


class _SlowWs:
    """Records when the frame reached the socket, then takes a while to return (like a write
    that loses the GIL or the CPU right after handing the bytes over)."""

    closed = False

    def __init__(self) -> None:
        self.written_ns: list[int] = []

    async def send_str(self, payload: str) -> None:
        self.written_ns.append(time.perf_counter_ns())
        await asyncio.sleep(0.02)


def test_push_is_stamped_before_the_frame_is_written(tmp_path):
    truth = GroundTruth(tmp_path / "truth.jsonl", lambda: 0)

    async def scenario():
        ws = _SlowWs()
        conn = Connection(ws, None, "private", truth)  # type: ignore[arg-type]
        conn.send("{}", {"topic": "bestQuote", "rfq_id": "R1"})
        conn.send(None)  # type: ignore[arg-type]
        await asyncio.wait_for(conn.writer, 5)
        return ws

    ws = asyncio.run(scenario())
    pushes = truth.events("push")
    assert len(pushes) == 1 and len(ws.written_ns) == 1
    assert pushes[0]["perf_ns"] <= ws.written_ns[0]
