"""Child processes of a benchmark run: the venue host and the clients, spoken to in JSON lines.

Every child is started with ``start_new_session`` so it never receives the terminal's Ctrl-C
before the orchestrator has stopped it in order; every child is stopped (stdin ``stop``, then
terminate, then kill) and waited for, whatever happened.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class ChildError(RuntimeError):
    """A child process died, answered an error or did not answer in time."""


class Child:
    """A ``python -m <module>`` child; ``ask`` sends one JSON command and waits for its answer."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], stderr_path: Path) -> None:
        self.name = name
        self._stderr = open(stderr_path, "ab")  # noqa: SIM115 - closed in close()
        full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        self.proc = subprocess.Popen([sys.executable, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr, env=full_env, cwd=str(ROOT), text=True,
                                     start_new_session=True)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name=f"{name}-stdout", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def next_message(self, timeout: float) -> dict[str, Any]:
        """The next JSON line from the child; raises ``ChildError`` on EOF or timeout."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise ChildError(f"{self.name}: no answer within {timeout:.0f} s; see its stderr log") from None
            if line is None:
                raise ChildError(f"{self.name}: exited (code {self.proc.poll()}); see its stderr log")
            if line.startswith("{"):
                break   # anything else is stray output (a library logging to stdout), not an answer
        message = json.loads(line)
        if message.get("ok") is False:
            raise ChildError(f"{self.name}: {message.get('error')}")
        return message

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise ChildError(f"{self.name}: cannot write to it ({exc})") from None

    def ask(self, cmd: str, answer_within_s: float | None = None, **kwargs: Any) -> dict[str, Any]:
        """Send ``{"cmd": cmd, **kwargs}`` and wait for the answer: ``answer_within_s``, else
        the command's own ``timeout`` argument plus a minute, else two minutes."""
        self.send(json.dumps({"cmd": cmd, **kwargs}))
        return self.next_message(answer_within_s or float(kwargs.get("timeout", 60.0)) + 60.0)

    def close(self, timeout: float = 30.0) -> None:
        """Ask politely (``stop`` + EOF), then terminate, then kill; always reaps the process."""
        if self.proc.poll() is None:
            try:
                self.send("stop")
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            except (ChildError, OSError):
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
        self._stderr.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
