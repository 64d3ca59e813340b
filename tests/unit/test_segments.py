"""One table of tricky bodies, run through both segment counters: ours (notify/segments.py)
and the Twilio emulator's own copy (sandbox/twilio/segments.py), so they cannot drift."""

from __future__ import annotations

import pytest

from notify import segments
from sandbox.twilio.segments import segments as emulator_segments

GSM, UCS = segments.GSM_7, segments.UCS_2

# (name, body, encoding, units, segments)
TABLE: list[tuple[str, str, str, int, int]] = [
    ("empty body: no message", "", GSM, 0, 0),
    ("one character", "a", GSM, 1, 1),
    ("exactly 160 GSM-7", "a" * 160, GSM, 160, 1),
    ("161 GSM-7: two parts of 153", "a" * 161, GSM, 161, 2),
    ("exactly 306 GSM-7 (2 x 153)", "a" * 306, GSM, 306, 2),
    ("307 GSM-7", "a" * 307, GSM, 307, 3),
    ("153 GSM-7 is one segment", "a" * 153, GSM, 153, 1),
    ("extension characters count two", "{}[]~|^\\€", GSM, 18, 1),
    ("80 euro signs fill 160 septets", "€" * 80, GSM, 160, 1),
    ("81 euro signs: 162 septets", "€" * 81, GSM, 162, 2),
    # 152 septets, then an escape pair that does not fit in part one's 153: it starts part 2.
    ("an escape pair never straddles parts", "a" * 152 + "€" + "a" * 10, GSM, 164, 2),
    ("the straddle can add a part", "a" * 152 + "€" + "a" * 152, GSM, 306, 3),
    ("GSM-7 accents stay GSM-7", "Ça coute ñ é ü", GSM, 14, 1),
    ("a curly quote switches to UCS-2", "It\u2019s here", UCS, 9, 1),
    ("exactly 70 UCS-2", "й" * 70, UCS, 70, 1),
    ("71 UCS-2: two parts of 67", "й" * 71, UCS, 71, 2),
    ("exactly 134 UCS-2 (2 x 67)", "й" * 134, UCS, 134, 2),
    ("67 UCS-2 is one segment", "й" * 67, UCS, 67, 1),
    ("an emoji is two UTF-16 units", "ok 👍", UCS, 5, 1),
    ("35 emoji fill 70 units", "👍" * 35, UCS, 70, 1),
    ("36 emoji: 72 units", "👍" * 36, UCS, 72, 2),
    # 66 units, then a surrogate pair that does not fit in part one's 67: it starts part 2.
    ("a surrogate pair never straddles parts", "й" * 66 + "👍" + "й" * 3, UCS, 71, 2),
    ("combining marks are characters of their own", "e\u0301" * 35, UCS, 70, 1),
    ("a combining mark past 70 units", "e\u0301" * 36, UCS, 72, 2),
    ("a GSM-7 body made UCS-2 by one character", "a" * 100 + "✓", UCS, 101, 2),
    ("form feed is an extension character", "\f", GSM, 2, 1),
    ("a tab is not GSM-7", "a\tb", UCS, 3, 1),
]


@pytest.mark.parametrize(("name", "body", "encoding", "units", "expected"), TABLE,
                         ids=[row[0] for row in TABLE])  # fmt: skip
def test_our_counter(name: str, body: str, encoding: str, units: int, expected: int) -> None:
    counted = segments.count(body)
    assert (counted.encoding, counted.units, counted.segments) == (encoding, units, expected)
    assert counted.characters == len(body)


@pytest.mark.parametrize(("name", "body", "encoding", "units", "expected"), TABLE,
                         ids=[row[0] for row in TABLE])  # fmt: skip
def test_the_emulator_counts_the_same(
    name: str, body: str, encoding: str, units: int, expected: int
) -> None:
    assert emulator_segments(body) == expected


def test_the_characters_that_cause_ucs2_are_named_once_in_order() -> None:
    assert segments.non_gsm("It\u2019s \u201clate\u201d \u2019") == ["\u2019", "\u201c", "\u201d"]
    assert segments.non_gsm("plain {text} €") == []


def test_too_long() -> None:
    assert segments.count("a" * 1601).too_long
    assert not segments.count("a" * 1600).too_long
