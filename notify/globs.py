"""Event-type globs (`shipment.*`, `order.[!x]*`) as one regex that Python's `re` and
Postgres's `~` read the same way, so routing and SQL cancellation agree on every pattern.

Semantics are fnmatch's: `*` is any run of characters (dots included), `?` one character,
`[seq]` / `[!seq]` a set or its complement; an unclosed `[` is a literal. Sets are written out
member by member over the characters an event type may contain, which sidesteps the
dialects' differences inside brackets.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Iterable

# What decoding accepts in an event type: letters, digits, `_`, `-` and the dots between.
TYPE_ALPHABET = string.ascii_letters + string.digits + "_-."


def _literal(char: str) -> str:
    return char if char.isalnum() or char == "_" else "\\" + char


def _members(spec: str) -> list[str]:
    """The characters of a set's body, with `a-z` ranges expanded over TYPE_ALPHABET."""
    chars: list[str] = []
    i = 0
    while i < len(spec):
        if i + 2 < len(spec) and spec[i + 1] == "-":
            low, high = spec[i], spec[i + 2]
            chars.extend(c for c in TYPE_ALPHABET if low <= c <= high)
            i += 3
        else:
            chars.append(spec[i])
            i += 1
    return [c for c in dict.fromkeys(chars) if c in TYPE_ALPHABET]


def _set(body: str) -> str:
    negate = body.startswith("!")
    members = _members(body[1:] if negate else body)
    if not members:
        return "." if negate else "[^\\s\\S]"  # fnmatch: an empty set matches nothing
    return ("[^" if negate else "[") + "".join(_literal(c) for c in members) + "]"


# Patterns are rules' constants, translated for every row that carries them: remember them.
@functools.lru_cache(maxsize=4096)
def translate(pattern: str) -> str:
    """One glob as an anchored regex, valid in Python and in Postgres AREs."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        i += 1
        if char == "*":
            if not out or out[-1] != ".*":  # `**` is `*`
                out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            j = i
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1  # a `]` first in the set is a member, as in fnmatch
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append("\\[")
            else:
                out.append(_set(pattern[i:j]))
                i = j + 1
        else:
            out.append(_literal(char))
    return "^" + "".join(out) + "$"


def compile_globs(patterns: Iterable[str]) -> re.Pattern[str]:
    """Several globs as one compiled Python pattern (any of them matches)."""
    return re.compile("|".join(f"(?:{translate(p)})" for p in patterns))
