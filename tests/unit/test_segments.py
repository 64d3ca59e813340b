"""SMS segment counting: GSM-7 vs UCS-2, extension characters, concatenation limits."""

from __future__ import annotations

import pytest

from notify.segments import count


@pytest.mark.parametrize(
    ("body", "encoding", "units", "segments"),
    [
        ("", "GSM-7", 0, 0),
        ("Hello", "GSM-7", 5, 1),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("€" * 80, "GSM-7", 160, 1),  # extension table: two septets each
        ("€" * 81, "GSM-7", 162, 2),
        ("Grüße aus Köln", "GSM-7", 14, 1),  # umlauts and ß are in the GSM set
        ("Zażółć", "UCS-2", 6, 1),
        ("ć" * 70, "UCS-2", 70, 1),
        ("ć" * 71, "UCS-2", 71, 2),
        ("ć" * 134, "UCS-2", 134, 2),
        ("ć" * 135, "UCS-2", 135, 3),
        ("🚚", "UCS-2", 2, 1),  # outside the BMP: a surrogate pair
    ],
)
def test_counts(body: str, encoding: str, units: int, segments: int) -> None:
    result = count(body)
    assert (result.encoding, result.units, result.segments) == (encoding, units, segments)


def test_over_1600_characters_is_too_long() -> None:
    assert not count("a" * 1600).too_long
    assert count("a" * 1601).too_long
