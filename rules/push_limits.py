"""What FCM refuses in a push, checked before it is sent. Pure.

FCM answers INVALID_ARGUMENT for each of these, so a rule that breaks them fails every push it
makes, and only in production: `rules check` refuses reserved data keys (and the JSON Schema
describes them), and routing fails a push over the size limit without calling FCM.

Sources: the FCM v1 reference for `Message.data` ("The key should not be a reserved word
("from", "message_type", or any word starting with "google" or "gcm")"); the message-types
guide, which also reserves `notification` and sets the limit ("Maximum payload for both message
types is 4096 bytes"). FCM does not say how it counts; we count what we send as payload, the
notification's title and body and every data key and value, in UTF-8 bytes, which is no less
than what FCM counts (observed elsewhere: the data alone).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

RESERVED_KEYS = ("from", "notification", "message_type")
RESERVED_PREFIXES = ("google", "gcm")
MAX_PAYLOAD_BYTES = 4096


def _any_case(word: str) -> str:
    return "".join(f"[{c}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


# The same rule for the JSON Schema (rules.schema.json): a pattern a data key must not match,
# in any case (FCM's own comparison is not documented; `From` is refused, not sent).
RESERVED_KEY_PATTERN = (
    "^(?:" + "|".join(map(_any_case, RESERVED_KEYS)) + ")$"
    "|^(?:" + "|".join(map(_any_case, RESERVED_PREFIXES)) + ")"
)


def reserved_key_problem(key: str) -> str | None:
    """Why FCM refuses `key` as a data key, or None if it does not."""
    folded = key.lower()
    if folded in RESERVED_KEYS:
        return f"data key {key!r} is reserved by FCM"
    prefix = next((p for p in RESERVED_PREFIXES if folded.startswith(p)), None)
    if prefix is not None:
        return f"data key {key!r} is reserved by FCM (no key may start with {prefix!r})"
    return None


def payload_bytes(title: str | None, body: str, data: Mapping[str, str] | None) -> int:
    """The payload FCM limits: title, body, and each data key and value, in UTF-8 bytes."""
    size = len(body.encode()) + len((title or "").encode())
    for key, value in (data or {}).items():
        size += len(key.encode()) + len(value.encode())
    return size


def too_large(title: str | None, body: str, data: Mapping[str, str] | None) -> str | None:
    """Why FCM would refuse this push for its size, or None if it fits."""
    size = payload_bytes(title, body, data)
    if size <= MAX_PAYLOAD_BYTES:
        return None
    return (
        f"push payload is {size} bytes (title, body and data as UTF-8), over FCM's limit of "
        f"{MAX_PAYLOAD_BYTES}: shorten the rule's body or data"
    )


_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "true/false"),  # before int: a bool is an int
    (int, "a number"),
    (float, "a number"),
    (type(None), "empty"),
    (list, "a list"),
    (dict, "a mapping"),
)


def data_problems(data: Mapping[Any, Any]) -> list[tuple[Any, str, bool]]:
    """(key, message, at the key rather than its value) for each entry of a rule's `data`
    that FCM would refuse: a reserved key, or a value that is not a string."""
    found: list[tuple[Any, str, bool]] = []
    for key, value in data.items():
        if not isinstance(key, str):
            found.append((key, f"data key {key!r} must be text: quote it", True))
            continue
        reserved = reserved_key_problem(key)
        if reserved is not None:
            found.append((key, reserved, True))
        if not isinstance(value, str):
            kind = next((k for t, k in _KINDS if isinstance(value, t)), type(value).__name__)
            message = f"data.{key}: FCM data values are strings, not {kind}: quote the value"
            found.append((key, message, False))
    return found
