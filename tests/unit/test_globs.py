"""The one glob translator: fnmatch's meaning, in a regex Python and Postgres read alike."""

from __future__ import annotations

import fnmatch
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from notify.globs import TYPE_ALPHABET, compile_globs, translate
from tests.profiles import examples

# Event types as decoding accepts them; patterns over the characters rules check allows.
event_types = st.from_regex(r"\A[A-Za-z0-9_-]{1,6}(\.[A-Za-z0-9_-]{1,6}){0,2}\Z")
patterns = st.text(alphabet=TYPE_ALPHABET[:8] + "._-*?[]!", min_size=1, max_size=10)


@settings(max_examples=examples(2000), deadline=None)
@given(patterns, event_types)
def test_python_reading_agrees_with_fnmatch(pattern: str, event_type: str) -> None:
    ours = re.match(translate(pattern), event_type) is not None
    assert ours == fnmatch.fnmatchcase(event_type, pattern), (pattern, translate(pattern))


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("shipment.*", ["shipment.delayed", "shipment.a.b"], ["shipments.x", "order.shipment.x"]),
        ("*.delivered", ["shipment.delivered"], ["shipment.delivered2"]),
        ("order.?", ["order.a"], ["order.ab", "order."]),
        ("order.[ab]x", ["order.ax", "order.bx"], ["order.cx"]),
        ("order.[!ab]x", ["order.cx", "order.-x"], ["order.ax"]),
        ("order.[a-c]", ["order.b"], ["order.d"]),
        ("order.[", [], ["order.x"]),  # an unclosed bracket is a literal
    ],
)
def test_examples(pattern: str, matches: list[str], misses: list[str]) -> None:
    compiled = compile_globs([pattern])
    assert all(compiled.match(t) for t in matches)
    assert not any(compiled.match(t) for t in misses)


def test_several_patterns_are_alternatives() -> None:
    compiled = compile_globs(["shipment.delivered", "shipment.cancel*"])
    assert compiled.match("shipment.cancelled") and compiled.match("shipment.delivered")
    assert not compiled.match("shipment.delayed")
