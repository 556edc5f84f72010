"""ListenKeyKeeper with a fake Market Place and a fake private stream, plus one run against a
real StreamConnection whose handshake the (local) server refuses, as a dead key would be."""

from __future__ import annotations

import threading
from dataclasses import fields

import pytest

from rfqbot.backoff import Backoff
from rfqbot.errors import Banned, OutcomeUnknown, TransportError, VenueError
from rfqbot.events import ListenKeyStatus
from rfqbot.streams.listenkey import ListenKeyKeeper, key_hint
from rfqbot.streams.connection import SessionEnd, StreamConnection
from tests.test_streams import FakeWsServer, Sink, fake_decode, wait_until

KEYS = ["KEYONEaaaaaaaaaaaaaaaaaaaaaaaa01", "KEYTWObbbbbbbbbbbbbbbbbbbbbbbb02",
        "KEYTHREEcccccccccccccccccccccc03", "KEYFOURddddddddddddddddddddddd04"]


def url_for(key: str) -> str:
    return f"wss://stream.test/api/v1/ws/{key}"


class FakeApi:
    """Listen-key endpoints; every call lands in the shared ``calls`` log in order."""

    def __init__(self, calls: list[tuple[str, str]]) -> None:
        self.calls = calls
        self.keys = iter(KEYS)
        self.create_errors: list[Exception] = []
        self.extend_error: Exception | None = None
        self.delete_error: Exception | None = None
        self.create_gate: threading.Event | None = None
        self.delete_gate: threading.Event | None = None

    def create_listen_key(self) -> str:
        if self.create_gate is not None:
            self.create_gate.wait(5)
        if self.create_errors:
            self.calls.append(("create", "error"))
            raise self.create_errors.pop(0)
        key = next(self.keys)
        self.calls.append(("create", key))
        return key

    def extend_listen_key(self, key: str) -> None:
        self.calls.append(("extend", key))
        if self.extend_error is not None:
            raise self.extend_error

    def delete_listen_key(self, key: str) -> None:
        if self.delete_gate is not None:
            self.delete_gate.wait(5)
        self.calls.append(("delete", key))
        if self.delete_error is not None:
            raise self.delete_error


class FakeStream:
    def __init__(self, calls: list[tuple[str, str]]) -> None:
        self.calls = calls

    def move_to(self, url: str) -> None:
        self.calls.append(("move_to", url))

    def start(self) -> bool:
        self.calls.append(("start", ""))
        return True


@pytest.fixture
def rig():
    calls: list[tuple[str, str]] = []
    api, stream, sink = FakeApi(calls), FakeStream(calls), Sink()
    keeper = ListenKeyKeeper(api, stream, url_for, post=sink, fresh_key_grace_s=10,
                             create_backoff=Backoff(base_s=0.01, cap_s=0.02),
                             stale_replace_backoff=Backoff(base_s=30, cap_s=30))
    yield keeper, api, calls, sink
    keeper.stop(1.0)
    assert_no_key_leaked(sink)
    leaked = [t.name for t in threading.enumerate() if t.name.startswith("rfqbot-listenkey")]
    assert not leaked


def assert_no_key_leaked(sink: Sink) -> None:
    for event in sink.events:
        for f in fields(event):
            value = str(getattr(event, f.name))
            assert not any(k in value for k in KEYS), f"key leaked in {event}"


def actions(sink: Sink) -> list[str]:
    return [e.action for e in sink.of(ListenKeyStatus)]


def dead_key_end(key: str, *, frames: int = 0, lasted_ms: int | None = 500,
                 reason: str = "closed") -> SessionEnd:
    ended = 1_760_000_010_000
    connected = None if lasted_ms is None else ended - lasted_ms
    return SessionEnd("private", 1, url_for(key), reason, connected, ended, frames, "")


# --- start / extend ----------------------------------------------------------------------------

def test_start_creates_key_then_starts_stream_on_it(rig):
    keeper, _, calls, sink = rig
    assert keeper.start() is True
    assert calls == [("create", KEYS[0]), ("move_to", url_for(KEYS[0])), ("start", "")]
    assert actions(sink) == ["created"]
    assert sink.of(ListenKeyStatus)[0].key_hint == key_hint(KEYS[0]) == keeper.key_hint


def test_start_twice_keeps_one_key(rig):
    keeper, _, calls, _ = rig
    keeper.start()
    assert keeper.start() is True
    assert [c for c in calls if c[0] == "create"] == [("create", KEYS[0])]


def test_extend_success(rig):
    keeper, _, calls, sink = rig
    keeper.start()
    keeper.extend()
    assert calls[-1] == ("extend", KEYS[0])
    assert actions(sink) == ["created", "extended"]


@pytest.mark.parametrize("error", [
    VenueError("-1150", "listen key does not exist", 400),
    TransportError("/api/v1/userDataStream", "connection reset"),
    OutcomeUnknown("/api/v1/userDataStream", "HTTP 502"),
    RuntimeError("anything at all"),
])
def test_failed_extend_replaces_key_in_order(rig, error):
    keeper, api, calls, sink = rig
    keeper.start()
    api.extend_error = error
    keeper.extend()
    assert calls[3:] == [("extend", KEYS[0]), ("create", KEYS[1]), ("move_to", url_for(KEYS[1])),
                         ("delete", KEYS[0])]
    assert actions(sink) == ["created", "extend_failed", "created", "replaced", "deleted"]
    assert keeper.key_hint == key_hint(KEYS[1])
    deleted = sink.of(ListenKeyStatus)[-1]
    assert deleted.key_hint == key_hint(KEYS[0])


def test_failed_delete_of_old_key_keeps_new_key(rig):
    keeper, api, calls, sink = rig
    keeper.start()
    api.extend_error = VenueError("-1150", "gone", 400)
    api.delete_error = TransportError("/api/v1/userDataStream", "timeout")
    keeper.extend()
    assert actions(sink)[-2:] == ["replaced", "failed"]
    assert "delete" in sink.of(ListenKeyStatus)[-1].detail
    assert keeper.key_hint == key_hint(KEYS[1])


def test_error_text_never_carries_the_key(rig):
    keeper, api, _, sink = rig
    keeper.start()
    api.extend_error = VenueError("-1150", f"listen key {KEYS[0]} does not exist", 400)
    keeper.extend()
    failed = next(e for e in sink.of(ListenKeyStatus) if e.action == "extend_failed")
    assert key_hint(KEYS[0]) in failed.detail  # assert_no_key_leaked in the fixture does the rest


def test_create_retries_with_backoff_then_succeeds(rig):
    keeper, api, calls, sink = rig
    api.create_errors = [TransportError("/api/v1/userDataStream", "down"), OutcomeUnknown("x", "502")]
    assert keeper.start() is True
    assert [c for c in calls if c[0] == "create"] == [("create", "error"), ("create", "error"),
                                                      ("create", KEYS[0])]
    assert actions(sink) == ["failed", "failed", "created"]


def test_create_gives_up_after_max_attempts_and_on_ban(rig):
    keeper, api, calls, sink = rig
    api.create_errors = [TransportError("e", "down")] * 3
    with pytest.raises(TransportError):
        keeper.start(max_attempts=2)
    assert ("start", "") not in calls
    api.create_errors = [Banned("e")]
    with pytest.raises(Banned):
        keeper.start()


# --- the private stream reporting a dead key ----------------------------------------------------

def test_stale_right_after_connect_replaces_key(rig):
    keeper, _, calls, sink = rig
    keeper.start()
    keeper.on_stream_end(dead_key_end(KEYS[0], lasted_ms=2_000))
    assert wait_until(lambda: "deleted" in actions(sink), 2.0)
    assert calls[3:] == [("create", KEYS[1]), ("move_to", url_for(KEYS[1])), ("delete", KEYS[0])]


def test_stale_without_a_single_frame_replaces_key(rig):
    # Open but deaf (not even the server's pings) for private_stale_after_s: reconnecting on
    # the same key would stay deaf forever, however long the grace is.
    keeper, _, calls, sink = rig
    keeper.start()
    keeper.on_stream_end(dead_key_end(KEYS[0], frames=0, lasted_ms=75_000, reason="stale"))
    assert wait_until(lambda: "deleted" in actions(sink), 2.0)
    assert calls[3:] == [("create", KEYS[1]), ("move_to", url_for(KEYS[1])), ("delete", KEYS[0])]


def test_error_frame_then_quick_close_replaces_key(rig):
    keeper, _, _, sink = rig
    keeper.start()
    keeper.on_stream_end(dead_key_end(KEYS[0], frames=1, lasted_ms=300))
    assert wait_until(lambda: "replaced" in actions(sink), 2.0)


def test_refused_handshake_replaces_key(rig):
    keeper, _, _, sink = rig
    keeper.start()
    keeper.on_stream_end(dead_key_end(KEYS[0], lasted_ms=None, reason="rejected"))
    assert wait_until(lambda: "replaced" in actions(sink), 2.0)


@pytest.mark.parametrize("end", [
    dead_key_end(KEYS[0], frames=3, lasted_ms=11_000),           # the key worked for a while
    dead_key_end(KEYS[0], frames=4, lasted_ms=60_000, reason="stale"),  # worked, then went quiet
    dead_key_end(KEYS[0], lasted_ms=None, reason="error"),       # network down: not the key
    dead_key_end(KEYS[3]),                                       # about some other key
])
def test_ordinary_drops_do_not_replace_key(rig, end):
    keeper, _, calls, sink = rig
    keeper.start()
    keeper.on_stream_end(end)
    assert not wait_until(lambda: "replaced" in actions(sink), 0.2)
    assert len(calls) == 3


def test_repeated_dead_key_reports_are_paced_and_stop_wakes_the_wait(rig):
    keeper, _, calls, sink = rig
    keeper.start()
    keeper.on_stream_end(dead_key_end(KEYS[0]))
    assert wait_until(lambda: "deleted" in actions(sink), 2.0)
    keeper.on_stream_end(dead_key_end(KEYS[1]))  # the new key dies too: wait >= 15 s first
    assert not wait_until(lambda: actions(sink).count("replaced") == 2, 0.3)
    assert keeper.stop(2.0) is True
    assert [c for c in calls if c[0] == "create"] == [("create", KEYS[0]), ("create", KEYS[1])]
    assert calls[-1] == ("delete", KEYS[1])


# --- concurrency and stop -------------------------------------------------------------------------

def test_concurrent_replacements_happen_once(rig):
    keeper, api, calls, sink = rig
    keeper.start()
    api.create_gate = threading.Event()
    results: list[bool] = []
    first = threading.Thread(target=lambda: results.append(keeper.replace("extend failed", KEYS[0])))
    first.start()
    assert wait_until(lambda: keeper._replacing.locked(), 2.0)
    # the stream thread reports the same dead key meanwhile; and an extend fails on it
    assert keeper.replace("stream stale", KEYS[0]) is False
    keeper.on_stream_end(dead_key_end(KEYS[0]))
    api.create_gate.set()
    first.join(2)
    assert wait_until(lambda: not any(t.name == "rfqbot-listenkey-replace" and t.is_alive()
                                      for t in threading.enumerate()), 2.0)
    assert results == [True]
    assert [c for c in calls if c[0] == "create"] == [("create", KEYS[0]), ("create", KEYS[1])]
    assert [c for c in calls if c[0] == "move_to"] == [("move_to", url_for(KEYS[0])),
                                                       ("move_to", url_for(KEYS[1]))]
    assert actions(sink).count("replaced") == 1
    # a late report about the replaced key changes nothing
    assert keeper.replace("late", KEYS[0]) is False


def test_stop_deletes_key(rig):
    keeper, _, calls, sink = rig
    keeper.start()
    assert keeper.stop(1.0) is True
    assert calls[-1] == ("delete", KEYS[0])
    assert actions(sink)[-1] == "deleted"
    keeper.extend()  # the scheduler may still fire once: nothing happens
    assert calls[-1] == ("delete", KEYS[0])


def test_stop_is_bounded_when_delete_hangs(rig):
    keeper, api, _, sink = rig
    keeper.start()
    api.delete_gate = threading.Event()
    assert keeper.stop(0.2) is False
    api.delete_gate.set()
    assert wait_until(lambda: "deleted" in actions(sink), 2.0)


# --- with a real StreamConnection ----------------------------------------------------------------

def test_dead_key_on_real_stream_moves_it_to_a_new_key():
    calls: list[tuple[str, str]] = []
    api, sink = FakeApi(calls), Sink()
    with FakeWsServer() as server:
        server.reject_paths.add(f"/api/v1/ws/{KEYS[0]}")  # the first key is dead on arrival

        def url(key: str) -> str:
            return server.url(f"/api/v1/ws/{key}")

        stream = StreamConnection("private", url("placeholder"), post=sink, decode=fake_decode,
                                  answer_server_pings=True, stale_after_s=2.0, close_timeout_s=0.2,
                                  backoff=Backoff(base_s=0.02, cap_s=0.1))
        keeper = ListenKeyKeeper(api, stream, url, post=sink, fresh_key_grace_s=1,
                                 create_backoff=Backoff(base_s=0.01, cap_s=0.02))
        stream.on_stale = keeper.on_stream_end
        try:
            keeper.start()
            assert wait_until(lambda: server.connection_paths() == [f"/api/v1/ws/{KEYS[1]}"], 3.0)
            assert wait_until(lambda: ("delete", KEYS[0]) in calls, 2.0)
        finally:
            assert stream.stop(2.0) is True
            keeper.stop(1.0)
    assert calls[-1] == ("delete", KEYS[1])
    assert_no_key_leaked(sink)


class _HookLock:
    """A lock that runs ``hook`` once, just before the replace thread's 2nd acquire (the key swap)."""

    def __init__(self, hook):
        self._lock = threading.Lock()
        self._hook = hook
        self._entries = 0

    def __enter__(self):
        if threading.current_thread().name == "replacer":
            self._entries += 1
            if self._entries == 2:
                self._hook()
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)


def test_stop_racing_a_replacement_leaves_no_key_undeleted():
    calls: list[tuple[str, str]] = []
    api = FakeApi(calls)
    keeper = ListenKeyKeeper(api, FakeStream(calls), url_for, post=lambda e: None)
    assert keeper.start()
    stopper: list[threading.Thread] = []

    def stop_now():  # stop() runs to the end while the replacement is between create and swap
        keeper._replacing.release()  # as if stop()'s bounded wait for the replacement had run out
        t = threading.Thread(target=keeper.stop, kwargs={"timeout": 1.0})
        stopper.append(t)
        t.start()
        t.join(5)
        keeper._replacing.acquire()

    keeper._lock = _HookLock(stop_now)
    replacer = threading.Thread(target=keeper.replace, args=("test",), name="replacer")
    replacer.start()
    replacer.join(10)
    created = {k for op, k in calls if op == "create"}
    deleted = {k for op, k in calls if op == "delete"}
    assert created == {KEYS[0], KEYS[1]} and deleted == created, calls
