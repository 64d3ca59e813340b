"""The shapes of FCM device identifiers, and well-formed fakes of them.

FCM rejects a send whose target is not shaped like the identifier its field names, before
looking it up. The rules here are what real identifiers look like, not a published grammar:

- A Firebase Installation ID (``fid``) is 22 base64url characters: 17 bytes whose first
  four bits are 0111, so the first character is ``c``, ``d``, ``e`` or ``f``.
- A registration token (``token``, what ``getToken()`` returns) is an instance id (11
  characters in older tokens, a 22-character FID in current ones), one colon, then
  ``APA91b`` and at least 120 more base64url characters; real ones are 140-200 long.
"""

from __future__ import annotations

import base64
import hashlib
import re

FID = re.compile(r"^[c-f][A-Za-z0-9_-]{21}$")
REGISTRATION_TOKEN = re.compile(r"^[A-Za-z0-9_-]{11,22}:APA91b[A-Za-z0-9_-]{120,4000}$")
# FCM's documented answer for a malformed target. It documents no separate wording for a
# malformed FID, and callers match on this text, so both fields get it.
INVALID_TOKEN_MESSAGE = "The registration token is not a valid FCM registration token"
# A current token: 22-char FID, ":", "APA91b", 134 chars: 163 in all, like real ones.
_TOKEN_TAIL = 134


def is_installation_id(value: str) -> bool:
    return FID.match(value) is not None


def is_registration_token(value: str) -> bool:
    return REGISTRATION_TOKEN.match(value) is not None


def installation_id(seed: str) -> str:
    """A well-formed FID, the same for the same seed."""
    raw = bytearray(_stream(f"fid:{seed}", 17))
    raw[0] = 0x70 | (raw[0] & 0x0F)  # the FID header bits that make it start with c-f
    return _b64(bytes(raw))[:22]  # 17 bytes encode to 23 chars; Firebase keeps 22


def registration_token(seed: str) -> str:
    """A well-formed registration token, the same for the same seed."""
    tail = _b64(_stream(f"token:{seed}", _TOKEN_TAIL * 3 // 4 + 1))[:_TOKEN_TAIL]
    return f"{installation_id(seed)}:APA91b{tail}"


def _stream(label: str, size: int) -> bytes:
    # SHA-256 in counter mode: deterministic bytes of any length from a seed.
    out = b""
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{counter}:{label}".encode()).digest()
        counter += 1
    return out[:size]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
