"""The console's users file: `name:role:hash` lines (CONTRACT section 12).

Hashes are argon2id (argon2-cffi, its recommended parameters); the file is written by
`notify console add-user` and read once when the console starts.
"""

from __future__ import annotations

import enum
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from schemas import NotifyError

_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_hasher = PasswordHasher()
# Verified against when a name is unknown, so an unknown name costs what a wrong password
# does and the timing does not tell which names exist.
_DECOY = _hasher.hash("decoy password, never a user's")


class Role(enum.IntEnum):
    """Each role has the rights of the ones below it."""

    VIEWER = 1
    SUPPORT = 2
    OPERATOR = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            known = ", ".join(r.label for r in cls)
            raise UsersError(f"unknown role {text!r} (one of {known})") from None


class UsersError(NotifyError):
    """The users file or an add-user request is not usable."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    password_hash: str


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(user: User | None, password: str) -> bool:
    """True when the password is the user's; the same work whether or not the user exists."""
    try:
        return _hasher.verify(user.password_hash if user else _DECOY, password) and bool(user)
    except (VerificationError, InvalidHashError):
        return False


def parse(text: str, source: str = "console-users") -> dict[str, User]:
    users: dict[str, User] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":", 2)
        if len(parts) != 3 or not _NAME.match(parts[0]) or not parts[2].startswith("$"):
            raise UsersError(f"{source}:{number}: expected name:role:hash")
        try:
            role = Role.parse(parts[1])
        except UsersError as exc:
            raise UsersError(f"{source}:{number}: {exc}") from None
        users[parts[0]] = User(parts[0], role, parts[2])
    return users


def load(path: str) -> dict[str, User]:
    """The users in `path`; none when it does not exist."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    return parse(text, path)


def add(path: str, name: str, role: Role, password: str) -> bool:
    """Add or replace one user; True if the name was new. Written atomically, mode 0600."""
    if not _NAME.match(name):
        raise UsersError(f"a user name is 1-64 of A-Z a-z 0-9 _ . @ -, got {name!r}")
    if len(password) < 8:
        raise UsersError("a password has at least 8 characters")
    users = load(path)
    new = name not in users
    users[name] = User(name, role, hash_password(password))
    lines = [f"{u.name}:{u.role.label}:{u.password_hash}\n" for u in users.values()]
    target = Path(path).resolve()
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.writelines(lines)
    os.chmod(tmp, 0o600)
    os.replace(tmp, target)
    return new
