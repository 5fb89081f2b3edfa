"""Browser sessions of the UI (pure: no I/O; time is injected).

`gitops ui` asks the agent (with the API token) for a one-time login code and prints a URL
holding it; the browser trades the code for a session cookie and is redirected at once, so
neither the token nor a usable code stays in its history. Each session has its own CSRF
token, required on every action, and may be read-only."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

CODE_TTL = 120.0               # seconds a printed login URL works (once)
SESSION_TTL = 12 * 3600.0      # seconds a browser stays logged in
MAX_CODES = 100                # outstanding codes; the oldest go first
MAX_SESSIONS = 1000


@dataclass(frozen=True)
class Session:
    id: str
    csrf: str
    read_only: bool
    expires: float


class Sessions:
    def __init__(self, clock: Callable[[], float] = time.time,
                 all_read_only: bool = False) -> None:
        self.clock = clock
        self.all_read_only = all_read_only      # the agent's --ui-read-only (a wall screen)
        self._codes: dict[str, tuple[float, bool]] = {}    # code -> (expires, read_only)
        self._sessions: dict[str, Session] = {}

    def issue_code(self, read_only: bool) -> str:
        now = self.clock()
        self._codes = {c: v for c, v in self._codes.items() if v[0] > now}
        while len(self._codes) >= MAX_CODES:
            del self._codes[next(iter(self._codes))]
        code = secrets.token_urlsafe(32)
        self._codes[code] = (now + CODE_TTL, read_only or self.all_read_only)
        return code

    def redeem(self, code: str) -> Session | None:
        """A new session for a valid code, which is then spent; None otherwise."""
        found = self._codes.pop(code, None) if code else None
        now = self.clock()
        if found is None or found[0] <= now:
            return None
        self._sessions = {k: s for k, s in self._sessions.items() if s.expires > now}
        while len(self._sessions) >= MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32),
                          found[1] or self.all_read_only, now + SESSION_TTL)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        session = self._sessions.get(session_id or "")
        if session is None or session.expires <= self.clock():
            return None
        return session

    def end(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)


def csrf_ok(session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf.encode(), str(given).encode())
