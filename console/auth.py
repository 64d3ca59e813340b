"""Who is asking: sessions with their CSRF tokens, HTTP Basic, and slowed-down sign-ins.

Sessions live in the console process (one process serves the console): a restart signs
everyone out, which is the safe direction. A session's id is rotated at sign-in, so an id
handed out with the login form never becomes a signed-in session.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from console.users import Role, User

COOKIE = "notify_console"
# A working day; a session idle this long is gone.
SESSION_SECONDS = 8 * 3600.0
# Failed sign-ins for one name allowed before each further attempt must wait.
FREE_FAILURES = 3
MAX_WAIT_SECONDS = 300.0


@dataclass
class Session:
    csrf: str
    user: User | None = None
    seen: float = field(default_factory=time.monotonic)
    # One line for the next page shown (what a POST did), then forgotten.
    flash: str | None = None


class Sessions:
    def __init__(self, lifetime: float = SESSION_SECONDS) -> None:
        self.lifetime = lifetime
        self._by_id: dict[str, Session] = {}

    def new(self, user: User | None = None) -> tuple[str, Session]:
        self._forget_expired()
        sid = secrets.token_urlsafe(32)
        session = Session(csrf=secrets.token_urlsafe(32), user=user)
        self._by_id[sid] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        session = self._by_id.get(sid or "")
        if session is None:
            return None
        now = time.monotonic()
        if now - session.seen > self.lifetime:
            self._by_id.pop(sid or "", None)
            return None
        session.seen = now
        return session

    def end(self, sid: str | None) -> None:
        self._by_id.pop(sid or "", None)

    def _forget_expired(self) -> None:
        now = time.monotonic()
        for sid in [s for s, v in self._by_id.items() if now - v.seen > self.lifetime]:
            del self._by_id[sid]


def csrf_ok(session: Session | None, token: str | None) -> bool:
    if session is None or not token:
        return False
    return hmac.compare_digest(session.csrf.encode(), token.encode())


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(name, password) from an `Authorization: Basic ...` header, else None."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, sep, password = decoded.partition(":")
    return (name, password) if sep else None


def allowed(user: User | None, needed: Role) -> bool:
    return user is not None and user.role >= needed


@dataclass
class _Failures:
    count: int
    last: float


class SignInThrottle:
    """Failed sign-ins per name: after FREE_FAILURES, each attempt waits twice as long as the
    one before (1 s, 2 s, 4 s ... up to MAX_WAIT_SECONDS) from the last failure. An attempt
    inside the wait is refused without checking the password, so guessing stays slow even
    with many connections at once."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._failures: dict[str, _Failures] = {}
        self._now = clock

    def wait(self, name: str) -> float:
        """Seconds before `name` may try again (0: now)."""
        failures = self._failures.get(name)
        if failures is None or failures.count < FREE_FAILURES:
            return 0.0
        delay = min(2.0 ** (failures.count - FREE_FAILURES), MAX_WAIT_SECONDS)
        return max(0.0, failures.last + delay - self._now())

    def failed(self, name: str) -> None:
        failures = self._failures.setdefault(name, _Failures(0, 0.0))
        failures.count += 1
        failures.last = self._now()

    def succeeded(self, name: str) -> None:
        self._failures.pop(name, None)


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
