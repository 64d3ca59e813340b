"""Access tokens issued by the OAuth emulator, checked by the FCM emulator."""

from __future__ import annotations

import secrets
import threading
import time

TOKEN_LIFETIME_S = 3599


class TokenStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}

    def issue(self) -> str:
        # Google tokens start with "ya29."; mimic it so logs look familiar.
        token = f"ya29.sandbox-{secrets.token_urlsafe(32)}"
        with self._lock:
            self._expiry[token] = time.time() + TOKEN_LIFETIME_S
        return token

    def valid(self, token: str) -> bool:
        with self._lock:
            expiry = self._expiry.get(token)
        return expiry is not None and expiry > time.time()

    def count(self) -> int:
        with self._lock:
            return len(self._expiry)
