"""SMS encoding and segment counting (GSM 03.38 vs UCS-2), as carriers bill them. Pure.

In the core because both sides count: `rules preview` shows it, the workers' send-rate
limiter charges each message by it."""

from __future__ import annotations

from dataclasses import dataclass

# GSM 03.38 basic character set, and the extension table (each costs an escape + char).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")
MAX_CHARACTERS = 1600  # Twilio rejects longer bodies (error 21617)


@dataclass(frozen=True)
class Segments:
    encoding: str  # "GSM-7" or "UCS-2"
    characters: int  # characters as the user sees them
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int

    @property
    def too_long(self) -> bool:
        return self.characters > MAX_CHARACTERS


def count(body: str) -> Segments:
    """One segment holds 160 septets / 70 UCS-2 units; concatenated parts hold 153 / 67."""
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in body):
        units = sum(2 if c in _GSM_EXTENDED else 1 for c in body)
        single, part, encoding = 160, 153, "GSM-7"
    else:
        units = len(body.encode("utf-16-le")) // 2  # astral characters take two units
        single, part, encoding = 70, 67, "UCS-2"
    segments = 1 if units <= single else -(-units // part)
    return Segments(encoding, len(body), units, max(1, segments) if body else 0)
