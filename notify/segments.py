"""SMS encoding and segment counting (GSM 03.38 vs UCS-2), as carriers bill them. Pure.

The one counter of the project: routing stores it on each SMS row, `rules preview` and
`rules diff` show it, the workers' send-rate limiter charges by it. The Twilio emulator
keeps its own copy (sandbox/ imports nothing of ours); tests/unit/test_segments.py runs
both over one table of bodies so they cannot drift.

Twilio's documented rule: a body of only GSM-7 characters (the extension table's cost two
septets: escape + character) fits 160 septets in one segment, else 153 per segment of a
concatenated message; any other character makes the whole body UCS-2: 70 UTF-16 units, else
67 per segment. A two-septet character never straddles two segments, nor does a surrogate
pair (an emoji): it starts the next one. An empty body is no message: 0 segments.
"""

from __future__ import annotations

import re

import msgspec

GSM_7, UCS_2 = "GSM-7", "UCS-2"
ENCODINGS = (GSM_7, UCS_2)
# GSM 03.38 basic character set, and the extension table (each costs an escape + char).
_GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = "^{}\\[~]|€\f"
_NOT_GSM = re.compile("[^" + re.escape(_GSM_BASIC + _GSM_EXTENDED) + "]")
_EXTENDED = re.compile("[" + re.escape(_GSM_EXTENDED) + "]")
_ASCII_EXTENDED = "^{}\\[~]|"
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
MAX_CHARACTERS = 1600  # Twilio rejects longer bodies (error 21617)


class Segments(msgspec.Struct, frozen=True, gc=False):  # built per routed body: cheap
    encoding: str  # GSM_7 or UCS_2
    characters: int  # code points
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int

    @property
    def too_long(self) -> bool:
        return self.characters > MAX_CHARACTERS


def count(body: str) -> Segments:
    """One segment holds 160 septets / 70 UCS-2 units; concatenated parts hold 153 / 67."""
    if body.isascii() and body.isprintable() and "`" not in body:
        # The common body, without a regular expression: printable ASCII is GSM-7 except
        # the backtick, and eight of it are two-septet extension characters.
        wide = 0
        for char in _ASCII_EXTENDED:
            if char in body:
                wide += body.count(char)
        single, part, encoding = 160, 153, GSM_7
    elif _NOT_GSM.search(body) is None:
        wide = len(_EXTENDED.findall(body))
        single, part, encoding = 160, 153, GSM_7
    else:
        wide = len(_ASTRAL.findall(body))
        single, part, encoding = 70, 67, UCS_2
    units = len(body) + wide
    if not body:
        segments = 0
    elif units <= single:
        segments = 1
    elif not wide:
        segments = -(-units // part)
    else:  # a two-unit character may not fit at the end of a part: it starts the next one
        segments = _packed(body, part, _EXTENDED if encoding == GSM_7 else _ASTRAL)
    return Segments(encoding, len(body), units, segments)


def _packed(body: str, part: int, wide: re.Pattern[str]) -> int:
    segments, used = 1, 0
    for char in body:
        width = 2 if wide.match(char) else 1
        if used + width > part:
            segments, used = segments + 1, 0
        used += width
    return segments


def non_gsm(text: str) -> list[str]:
    """The characters that make `text` UCS-2, each once, in order of appearance."""
    return list(dict.fromkeys(_NOT_GSM.findall(text)))


def named(characters: list[str]) -> str:
    """Characters as an editor can find them, with their code points (U+2019)."""
    return ", ".join(f"{c!r} (U+{ord(c):04X})" for c in characters)
