"""The listen key's whole life: create, keep alive, replace when it dies, delete at the end.

The key is what lets the private stream (``bestQuote``, ``rfqUpdates``) exist, and it dies
quietly: the venue expires it after 60 minutes without an extend, and a dead key shows up only
as a failed extend or a private connection that opens and then closes with nothing on it. So
the keeper treats both as "this key is gone": it creates a new key, moves the private stream to
it, and only then deletes the old one, so there is never a moment with no usable key.

One owner: only this object holds the key. The scheduler thread (extend) and the stream thread
(``on_stream_end``) both reach it, so replacements are serialised by a lock and de-duplicated by
the key they were about (a second report about a key that is already replaced is ignored).
The key itself is never logged or posted: ``key_hint`` is a hash fingerprint.
"""

from __future__ import annotations

import threading
from typing import Callable, Protocol

import structlog

from rfqbot.backoff import Backoff
from rfqbot.clock import Clock, SystemClock
from rfqbot.errors import Banned, RateLimited
from rfqbot.events import Event, ListenKeyStatus
from rfqbot.streams.connection import SessionEnd, key_hint

log = structlog.get_logger(__name__)


class ListenKeyApi(Protocol):
    def create_listen_key(self) -> str: ...
    def extend_listen_key(self, key: str) -> None: ...
    def delete_listen_key(self, key: str) -> None: ...


class PrivateStream(Protocol):
    def move_to(self, url: str) -> None: ...
    def start(self) -> bool: ...


class ListenKeyKeeper:
    """Owns the listen key; ``extend`` is the scheduler's keepalive job.

    Wiring: build the private ``StreamConnection`` first, then the keeper, then
    ``stream.on_stale = keeper.on_stream_end`` so a dead key on the stream triggers a
    replacement. Shutdown order: stop the private stream, then ``keeper.stop()`` (deleting the
    key first would make the venue drop the stream and provoke a pointless reconnect).
    """

    def __init__(self, marketplace: ListenKeyApi, private_stream: PrivateStream,
                 url_for_key: Callable[[str], str], *, post: Callable[[Event], None],
                 clock: Clock | None = None, extend_every_s: float = 1800.0,
                 fresh_key_grace_s: float = 10.0, create_backoff: Backoff | None = None,
                 stale_replace_backoff: Backoff | None = None) -> None:
        self._api = marketplace
        self._stream = private_stream
        self._url_for_key = url_for_key
        self._post = post
        self._clock: Clock = clock or SystemClock()
        self.extend_every_s = extend_every_s
        self._grace_ms = int(fresh_key_grace_s * 1000)
        self._create_backoff = create_backoff or Backoff(base_s=1.0, cap_s=60.0)
        # Replacements provoked by the stream are paced: a venue that drops every fresh
        # connection must not turn the keeper into a create/delete loop.
        self._stale_backoff = stale_replace_backoff or Backoff(base_s=5.0, cap_s=300.0)
        self._lock = threading.Lock()          # guards _key and _worker
        self._replacing = threading.Lock()     # held for the whole of a replacement
        self._stopping = threading.Event()
        self._key: str | None = None
        self.key_since_ms: int | None = None  # when the current key was created (status lines)
        self._worker: threading.Thread | None = None

    # --- public surface ------------------------------------------------------------------

    @property
    def key_hint(self) -> str:
        with self._lock:
            return key_hint(self._key)

    def start(self, max_attempts: int | None = None) -> bool:
        """Create the first key (retrying with backoff) and start the private stream on it.

        False when ``stop()`` interrupted it; raises ``Banned`` at once, or the last error
        after ``max_attempts`` failed creates (None: keep trying until stopped).
        """
        with self._lock:
            if self._key is not None:
                return True  # already started: a second key would only leak
        key = self._create(max_attempts=max_attempts)
        if key is None:
            return False
        with self._lock:
            self._key = key
            self.key_since_ms = self._clock.now_ms()
        self._stream.move_to(self._url_for_key(key))
        self._stream.start()
        return True

    def extend(self) -> None:
        """Keepalive job. Any failure means the key cannot be trusted: replace it."""
        with self._lock:
            key = self._key
        if key is None or self._stopping.is_set():
            return
        try:
            self._api.extend_listen_key(key)
        except Exception as exc:  # any failure: VenueError, TransportError, OutcomeUnknown, ...
            self._status("extend_failed", key, self._describe(exc, key))
            self.replace("extend failed", failed_key=key)
            return
        self._status("extended", key)

    def replace(self, reason: str, failed_key: str | None = None) -> bool:
        """New key, private stream moved to it, old key deleted; True when it happened.

        Runs at most once at a time: a concurrent call returns False at once. With
        ``failed_key``, nothing happens when that key is no longer the current one (somebody
        already replaced it).
        """
        if not self._replacing.acquire(blocking=False):
            log.info("listen_key_replacement_already_running", reason=reason)
            return False
        try:
            with self._lock:
                old = self._key
            if failed_key is not None and old != failed_key:
                return False
            if self._stopping.is_set():
                return False
            try:
                new = self._create()
            except Banned:
                return False  # already posted as failed; a human must act
            if new is None:
                return False
            # stop() sets the flag before it takes the key under this lock, so checking here,
            # under the lock, means: either stop() takes (and deletes) the new key, or we see
            # the flag and delete it ourselves. A check before the lock left a window in which
            # the new key was installed after stop() had taken the old one: never deleted.
            with self._lock:
                unwanted = self._stopping.is_set()
                if not unwanted:
                    self._key = new
                    self.key_since_ms = self._clock.now_ms()
            if unwanted:
                self._delete(new)
                return False
            self._stream.move_to(self._url_for_key(new))
            self._status("replaced", new, f"{reason}; old key {key_hint(old)}")
            if old is not None:
                self._delete(old)
            return True
        finally:
            self._replacing.release()

    def on_stream_end(self, end: SessionEnd) -> None:
        """``on_stale`` of the private stream: replace the key when it looks dead.

        Dead looks like: the handshake was refused, the connection opened and ended within
        ``fresh_key_grace_s``, or it opened and went stale without a single frame (not even
        the server's ping): the stream is open but the key delivers nothing, and reconnecting
        on the same key would stay deaf forever. Frames do not clear a quick end: a venue may
        send an error frame before closing, and a healthy private stream is quiet for its
        first 30 s anyway.
        A network error before connecting is not the key's fault (the stream's own reconnect
        handles it). Runs on the stream thread, so the replacement goes to a worker thread.
        """
        if self._stopping.is_set():
            return
        with self._lock:
            key = self._key
        if key is None or end.url != self._url_for_key(key):
            return  # about a key already replaced
        quick = end.connected_ms is not None and end.ended_ms - end.connected_ms <= self._grace_ms
        deaf = end.reason == "stale" and end.connected_ms is not None and end.frames == 0
        if not (end.reason == "rejected" or quick or deaf):
            self._stale_backoff.reset()  # the key worked: the next dead-key report acts at once
            return
        with self._lock:
            if self._worker is not None and self._worker.is_alive():
                return  # a replacement is already on its way
            first = self._stale_backoff.attempt == 0
            delay = self._stale_backoff.next_delay()
            if first:
                delay = 0.0  # act at once; the next dead-key report in a row waits
            self._worker = threading.Thread(
                target=self._replace_later, args=(delay, f"private stream {end.reason}: {end.detail}", key),
                name="rfqbot-listenkey-replace", daemon=True)
            self._worker.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop replacing and delete the key, waiting at most ``timeout``; True if deleted."""
        self._stopping.set()
        with self._lock:
            worker = self._worker
        if worker is not None:
            worker.join(timeout / 2)
        # a replacement in flight finishes its create + move before we take the key
        acquired = self._replacing.acquire(timeout=timeout / 2)
        try:
            with self._lock:
                key, self._key = self._key, None
        finally:
            if acquired:
                self._replacing.release()
        if key is None:
            return False
        done = threading.Event()
        outcome: list[bool] = []

        def delete() -> None:
            outcome.append(self._delete(key))
            done.set()

        threading.Thread(target=delete, name="rfqbot-listenkey-delete", daemon=True).start()
        if not done.wait(timeout):
            log.warning("listen_key_delete_timeout", key_hint=key_hint(key), timeout_s=timeout)
            return False
        return bool(outcome and outcome[0])

    # --- helpers -------------------------------------------------------------------------

    def _replace_later(self, delay: float, reason: str, key: str) -> None:
        if delay and self._stopping.wait(delay):
            return
        try:
            self.replace(reason, failed_key=key)
        except Exception:  # the worker must not die silently
            log.exception("listen_key_replace_crashed")

    def _create(self, max_attempts: int | None = None) -> str | None:
        """Create a key, retrying with backoff; None when stopped meanwhile."""
        self._create_backoff.reset()
        attempt = 0
        while not self._stopping.is_set():
            attempt += 1
            try:
                key = self._api.create_listen_key()
            except Banned as exc:
                self._status("failed", None, f"create: {exc}")
                raise
            except Exception as exc:  # any failure is retried: the private stream needs a key
                self._status("failed", None, f"create attempt {attempt}: {self._describe(exc, None)}")
                if max_attempts is not None and attempt >= max_attempts:
                    raise
                delay = self._create_backoff.next_delay()
                if isinstance(exc, RateLimited):
                    delay = max(delay, exc.retry_after_s)
                self._stopping.wait(delay)
                continue
            self._status("created", key)
            return key
        return None

    def _delete(self, key: str) -> bool:
        try:
            self._api.delete_listen_key(key)
        except Exception as exc:  # an undeleted key just expires within 60 min
            self._status("failed", key, f"delete: {self._describe(exc, key)}")
            return False
        self._status("deleted", key)
        return True

    def _status(self, action: str, key: str | None, detail: str = "") -> None:
        hint = key_hint(key)
        log_fn = log.warning if action in ("extend_failed", "failed") else log.info
        log_fn("listen_key", action=action, key_hint=hint, detail=detail)
        try:
            self._post(ListenKeyStatus(self._clock.now_ms(), action, hint, detail))
        except Exception:  # the queue's problem must not stop the key's upkeep
            log.exception("listen_key_post_failed", action=action)

    @staticmethod
    def _describe(exc: BaseException, key: str | None) -> str:
        text = f"{type(exc).__name__}: {exc}"[:300]
        return text.replace(key, key_hint(key)) if key else text
