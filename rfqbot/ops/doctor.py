"""``rfqbot doctor``: a checklist that says what is wrong and what to do about it.

Each check returns ``ok``, ``warn``, ``fail`` or ``skip`` (when an earlier failure makes it
meaningless), a detail line, and for anything not ok a fix an operator can act on. It changes
nothing on the venue that outlives it: the listen key it creates is deleted again, and the
journal is only opened read-only (writability is tested with a temporary file beside it), so it
is safe to run next to a live daemon.
"""

from __future__ import annotations

import os
import pwd
import sqlite3
import stat
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import structlog

from rfqbot.clock import Clock, SystemClock
from rfqbot.config.schema import Settings, load_config, resolve_config_path
from rfqbot.config.credentials import Credentials, load_credentials
from rfqbot.errors import Banned, ConfigError, RateLimited, RfqbotError, VenueError
from rfqbot.events import Event, StreamStatus
from rfqbot.journal.store import SCHEMA_VERSION, open_readonly, verify_rows

log = structlog.get_logger(__name__)

SKEW_WARN_MS = 250
SKEW_FAIL_MS = 1000  # the venue refuses timestamps more than 1000 ms ahead of its clock

_AUTH_FIXES = {
    "0001": "the signature was refused: the API secret does not belong to this API key; copy both again",
    "-1002": "the venue does not know this API key here: sandbox keys work only with the *-sandbox venue "
             "profiles, production keys only with production",
    "0202": "this host's IP address is not on the API key's IP access list; add it in the venue's API settings",
    "-1005": "the API key lacks a permission; enable trading (Market Place) for it in the venue's API settings",
    "-1021": "the request timestamp was outside recvWindow: fix the host clock (timedatectl set-ntp true)",
}


@dataclass
class Check:
    name: str
    status: str  # ok, warn, fail, skip
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class Doctor:
    """Runs the checks in order; later checks skip when what they need failed."""

    def __init__(self, config_path: str | None = None, *, env: Mapping[str, str] | None = None,
                 clock: Clock | None = None, stream_timeout_s: float = 10.0, private_grace_s: float = 1.0,
                 marketplace_factory: Callable[..., Any] | None = None) -> None:
        self.config_path = config_path
        self.env = os.environ if env is None else env
        self.clock: Clock = clock or SystemClock()
        self.stream_timeout_s = stream_timeout_s
        # The venue closes a private connection on a dead key at once; staying up this long proves it.
        self.private_grace_s = private_grace_s
        self.checks: list[Check] = []
        self._marketplace_factory = marketplace_factory
        self.settings: Settings | None = None
        self.credentials: Credentials | None = None

    def add(self, name: str, status: str, detail: str, fix: str = "") -> Check:
        check = Check(name, status, detail, fix)
        self.checks.append(check)
        return check

    def run(self) -> list[Check]:
        if not self.check_config():
            for name in ("credentials", "journal", "clock skew", "REST auth", "listen key", "private stream",
                         "public stream"):
                self.add(name, "skip", "needs a valid config")
            return self.checks
        self.check_credentials()
        self.check_journal()
        self.check_venue()
        return self.checks

    # --- local checks --------------------------------------------------------------------------

    def check_config(self) -> bool:
        file = resolve_config_path(self.config_path, self.env)
        try:
            self.settings = load_config(file, env=self.env)
        except ConfigError as exc:
            self.add("config", "fail", str(exc), "correct the key named above; rfqbot check-config shows the "
                     "effective values")
            return False
        profile = self.settings.profile()
        self.add("config", "ok", f"{file} is valid (venue {profile.name}, {profile.rest_url})")
        return True

    def check_credentials(self) -> None:
        assert self.settings is not None
        try:
            self.credentials = load_credentials(self.settings, self.env)
        except ConfigError as exc:
            self.add("credentials", "fail", str(exc), "see systemd/credentials.md: store api-key and api-secret "
                     "in /etc/rfqbot/credentials/ and load them with LoadCredential=")
            return
        cred_dir = self.env.get("CREDENTIALS_DIRECTORY")
        if "systemd credentials" not in self.credentials.source or not cred_dir:
            self.add("credentials", "warn", f"found in {self.credentials.source}",
                     "environment variables are readable by every process of the same user and by "
                     "`systemctl show`; prefer LoadCredential= (systemd/credentials.md)")
            return
        problems = []
        for name in ("api-key", "api-secret"):
            path = Path(cred_dir) / name
            if not path.is_file():
                continue
            problems += _permission_problems(path)
        if problems:
            self.add("credentials", "fail", "; ".join(problems),
                     f"chmod 0600 {cred_dir}/api-*; chown root (systemd reads them for the service) or the "
                     "service user")
        else:
            self.add("credentials", "ok", f"found in {cred_dir}, readable only by their owner")

    def check_journal(self) -> None:
        assert self.settings is not None
        path = Path(self.settings.journal.path)
        folder = path.parent
        if not folder.is_dir():
            # The daemon creates missing folders (and systemd's StateDirectory= does at start):
            # fine as long as the nearest existing ancestor lets us.
            ancestor = next((p for p in folder.parents if p.exists()), Path("/"))
            if ancestor.is_dir() and os.access(ancestor, os.W_OK | os.X_OK):
                self.add("journal", "ok", f"{folder} does not exist yet; it is created at first start")
            else:
                self.add("journal", "fail", f"the journal's folder {folder} does not exist and {ancestor} does not "
                         "let this user create it", "under systemd StateDirectory=rfqbot creates /var/lib/rfqbot; "
                         "otherwise mkdir it and chown it to the service user")
            return
        try:
            fd, probe = tempfile.mkstemp(prefix=".rfqbot-doctor-", dir=str(folder))
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            self.add("journal", "fail", f"cannot write in {folder}: {exc.strerror}",
                     f"chown the folder to the service user (chown rfqbot: {folder}) or change journal.path")
            return
        if not path.exists():
            self.add("journal", "ok", f"{folder} is writable; {path.name} will be created at first start")
            return
        if not os.access(path, os.R_OK | os.W_OK):
            self.add("journal", "fail", f"{path} is not readable and writable by this user",
                     f"run doctor as the service user, or chown it: chown rfqbot: {path}*")
            return
        try:
            conn = open_readonly(path)
            try:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                bad = verify_rows(conn)
                events = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] if version else 0
            finally:
                conn.close()
        except sqlite3.Error as exc:
            self.add("journal", "fail", f"cannot read {path}: {exc}",
                     "is it an rfqbot journal? keep it for audit, move it aside, and start with a new journal.path")
            return
        if version > SCHEMA_VERSION:
            self.add("journal", "fail", f"{path} has schema version {version}, newer than this rfqbot "
                     f"({SCHEMA_VERSION})", "upgrade rfqbot, or point journal.path at another file")
        elif bad is not None:
            self.add("journal", "fail", f"{path}: the hash chain breaks at seq {bad} (rows edited, deleted or "
                     "reordered)", "keep the file for audit, move it aside, and start with a new journal")
        else:
            mode = path.stat().st_mode & 0o777
            note = "" if not mode & 0o077 else f"; mode {mode:o} lets others read it"
            self.add("journal", "warn" if note else "ok", f"{path}: {events} events, hash chain verifies{note}",
                     f"chmod 0600 {path}" if note else "")

    # --- venue checks ------------------------------------------------------------------------

    def _marketplace(self) -> Any:
        assert self.settings is not None
        if self._marketplace_factory is not None:
            return self._marketplace_factory(self.settings, self.credentials)
        from rfqbot.venue.marketplace import MarketPlace

        return MarketPlace(self.settings.profile(), self.credentials, clock=self.clock)

    def check_venue(self) -> None:
        if self.credentials is None:
            for name in ("clock skew", "REST auth", "listen key", "private stream", "public stream"):
                self.add(name, "skip", "needs credentials")
            return
        market = self._marketplace()
        try:
            if not self.check_clock(market):
                for name in ("REST auth", "listen key", "private stream", "public stream"):
                    self.add(name, "skip", "the venue did not answer")
                return
            if self.check_auth(market):
                self.check_listen_key_and_private_stream(market)
            else:
                self.add("listen key", "skip", "needs working REST auth")
                self.add("private stream", "skip", "needs a listen key")
            self.check_public_stream()
        finally:
            market.close()

    def check_clock(self, market: Any) -> bool:
        try:
            offset = market.sync_clock()
        except RfqbotError as exc:
            self.add("clock skew", "fail", f"GET /api/v1/time failed: {exc}",
                     "check network, DNS, proxy and venue.rest_url; curl the URL from this host")
            return False
        skew = abs(offset)
        fix = ("synchronise the host clock: timedatectl set-ntp true (or install chrony); the venue rejects "
               "requests more than 1000 ms ahead of its clock")
        if skew >= SKEW_FAIL_MS:
            self.add("clock skew", "fail", f"local clock is {offset:+d} ms off the venue's", fix)
        elif skew >= SKEW_WARN_MS:
            self.add("clock skew", "warn", f"local clock is {offset:+d} ms off the venue's (rfqbot corrects for "
                     "it, but drift grows)", fix)
        else:
            self.add("clock skew", "ok", f"{offset:+d} ms against the venue")
        return True

    def check_auth(self, market: Any) -> bool:
        try:
            market.account()
        except VenueError as exc:
            self.add("REST auth", "fail", str(exc), _AUTH_FIXES.get(exc.code, "check the API key, secret and "
                                                                       "permissions in the venue's API settings"))
            return False
        except Banned as exc:
            self.add("REST auth", "fail", str(exc), "wait for the ban to lapse; lower request rates first")
            return False
        except (RateLimited, RfqbotError) as exc:
            self.add("REST auth", "fail", str(exc), "retry in a minute; check the network path to the venue")
            return False
        self.add("REST auth", "ok", "signed GET /api/v1/account accepted")
        return True

    def check_listen_key_and_private_stream(self, market: Any) -> None:
        from rfqbot.streams.connection import key_hint

        try:
            key = market.create_listen_key()
        except RfqbotError as exc:
            self.add("listen key", "fail", f"create failed: {exc}",
                     "the API key needs permission for user data streams (listen keys)")
            self.add("private stream", "skip", "needs a listen key")
            return
        check = self.add("listen key", "ok", f"created {key_hint(key)}")
        try:
            self.check_stream("private", self.settings.profile().private_stream_url(key))  # type: ignore[union-attr]
        finally:
            try:
                market.delete_listen_key(key)
            except RfqbotError as exc:
                check.status, check.fix = "warn", "harmless: an unused key expires within 60 minutes"
                check.detail = f"created {key_hint(key)} but delete failed: {exc}"
            else:
                check.detail = f"created and deleted {key_hint(key)}"

    def check_public_stream(self) -> None:
        assert self.settings is not None
        self.check_stream("public", self.settings.profile().public_stream_url)

    def check_stream(self, name: str, url: str) -> None:
        """Connect, subscribe, and see the stream stay up (public: answer a ping) within the timeout."""
        from rfqbot.streams.connection import StreamConnection, public_subscriptions

        assert self.settings is not None
        statuses: list[StreamStatus] = []
        changed = threading.Event()

        def post(event: Event) -> None:
            if isinstance(event, StreamStatus):
                statuses.append(event)
                changed.set()

        public = name == "public"
        cfg = self.settings.streams
        profile = self.settings.profile()
        stream = StreamConnection(
            name, url, post=post, decode=lambda *_: [],  # decoding is tested elsewhere; frames just count
            subscribe=public_subscriptions(cfg.public_topics) if public else (),
            client_ping_interval_s=1.0 if public else None, answer_server_pings=not public,
            stale_after_s=max(self.stream_timeout_s, 2.0), ca_file=profile.ca_file, clock=self.clock,
            connect_timeout_s=max(profile.connect_timeout_s, 1.0), max_backoff_s=1.0, poll_interval_s=0.05)
        deadline = self.clock.monotonic() + self.stream_timeout_s
        verdict: tuple[str, str] | None = None
        stream.start()
        try:
            subscribed_at = None
            while self.clock.monotonic() < deadline:
                bad = next((s for s in statuses if s.state in ("closed", "stale")), None)
                if bad is not None:
                    verdict = ("fail", f"{bad.state}: {bad.detail}")
                    break
                if subscribed_at is None and any(s.state == "subscribed" for s in statuses):
                    subscribed_at = self.clock.monotonic()
                if subscribed_at is not None:
                    # public: a frame (the pong to our first ping) proves the venue talks to us;
                    # private: the venue closes a connection on a dead key at once, so staying up is the proof.
                    if (public and stream.last_frame_ms is not None) or (
                            not public and self.clock.monotonic() - subscribed_at >= self.private_grace_s):
                        verdict = ("ok", "connected and subscribed" + (", ping answered" if public else
                                                                       ", stayed up"))
                        break
                changed.wait(0.05)
                changed.clear()
        finally:
            stream.stop(timeout=3.0)
        if verdict is None:
            states = ", ".join(s.state for s in statuses) or "nothing"
            verdict = ("fail", f"not subscribed within {self.stream_timeout_s:g} s (saw: {states})")
        fix = "" if verdict[0] == "ok" else (
            "check that outbound wss:// (port 443) to venue.ws_url is allowed and venue.ca_file if set"
            + ("" if public else "; a private stream closed at once usually means the listen key was refused"))
        self.add(f"{name} stream", verdict[0], verdict[1], fix)


def _permission_problems(path: Path) -> list[str]:
    """Secrets must be readable by their owner only, and owned by root or the user running this."""
    info = path.stat()
    problems = []
    if stat.S_IMODE(info.st_mode) & 0o077:
        problems.append(f"{path} has mode {stat.S_IMODE(info.st_mode):04o} (group/others can read it)")
    if info.st_uid not in (0, os.geteuid()):
        try:
            owner = pwd.getpwuid(info.st_uid).pw_name
        except KeyError:
            owner = str(info.st_uid)
        problems.append(f"{path} is owned by {owner}, neither root nor this user")
    return problems


def run_doctor(config_path: str | None = None, *, env: Mapping[str, str] | None = None,
               clock: Clock | None = None, stream_timeout_s: float = 10.0) -> list[Check]:
    """All checks, in order; see ``Check``."""
    return Doctor(config_path, env=env, clock=clock, stream_timeout_s=stream_timeout_s).run()


__all__ = ["Check", "Doctor", "run_doctor"]
