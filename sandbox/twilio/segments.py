"""SMS segment counting, which decides num_segments and the price of a message.

Twilio's documented rule, kept here because the emulator imports nothing of the project;
tests/unit/test_segments.py runs this and notify/segments.py over one table of bodies.
GSM-7 bodies: 160 septets in one segment, else 153 per part (the extension table's
characters take two, and never straddle two parts); anything else is UCS-2: 70 UTF-16
units, else 67 per part (a surrogate pair never straddles). No body, no segment.
"""

from __future__ import annotations

# GSM 03.38 basic set; anything else forces UCS-2 (70/67 chars per segment).
_GSM = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXT = frozenset("^{}\\[~]|€\f")


def segments(body: str) -> int:
    """SMS segment count the way carriers split GSM-7 vs UCS-2 bodies."""
    if all(c in _GSM or c in _GSM_EXT for c in body):
        widths = [2 if c in _GSM_EXT else 1 for c in body]
        single, multi = 160, 153
    else:
        widths = [2 if ord(c) > 0xFFFF else 1 for c in body]
        single, multi = 70, 67
    if not widths:
        return 0
    if sum(widths) <= single:
        return 1
    parts, used = 1, 0
    for width in widths:
        if used + width > multi:
            parts, used = parts + 1, 0
        used += width
    return parts
