"""SMS segment counting, which decides num_segments and the price of a message."""

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
        units = len(body) + sum(c in _GSM_EXT for c in body)
        single, multi = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, multi = 70, 67
    if units <= single:
        return 1
    return -(-units // multi)
