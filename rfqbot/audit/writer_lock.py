"""One writer per journal: an exclusive advisory lock on a sidecar file (``journal.db.lock``).

Why: SQLite serialises writers only transaction by transaction. A maintenance command that
replays every event (``rfqbot journal rebuild|prune|upgrade``) holds one write transaction for
seconds (about 12 s for 300k events), longer than the daemon's busy timeout, so the daemon's
next append failed with "database is locked" and it stopped deciding. With this lock the daemon
(the writer) and the maintenance commands exclude each other up front, with a message that says
what to do, instead of colliding halfway through.

Why ``flock`` on a separate file: ``flock`` locks belong to the open file description, so a
second open in the same process conflicts too (POSIX ``fcntl`` record locks do not, and closing
any descriptor of the file drops them), and the kernel releases the lock when the holder dies,
``kill -9`` included, so a crash never leaves a stale lock behind. A separate file because
SQLite uses POSIX locks on the database file itself and would be disturbed by ours. The file is
left in place when the lock is released: deleting it would race with the next opener.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_SUFFIX = ".lock"


def lock_path(journal_path: str | os.PathLike[str]) -> Path:
    """The sidecar lock file of a journal: ``journal.db`` -> ``journal.db.lock``."""
    return Path(str(journal_path) + LOCK_SUFFIX)


class WriterLock:
    """The exclusive writer lock of one journal; ``acquire`` never waits."""

    def __init__(self, journal_path: str | os.PathLike[str]) -> None:
        self.path = lock_path(journal_path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock if nobody holds it; False if another writer does. OSError if the lock file
        cannot be created (the journal's folder is not writable)."""
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the only descriptor drops the flock


def writer_active(journal_path: str | os.PathLike[str]) -> bool:
    """Whether some process holds the journal's writer lock right now (a probe: takes and drops it)."""
    path = lock_path(journal_path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
