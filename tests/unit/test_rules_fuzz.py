"""Mutated rules files: the loader returns rules or raises RulesError, and nothing else.

A running consumer keeps its last good rules only when a bad file is a RulesError; any other
exception out of the loader would be a typo that stops notifications (docs/rules.md).
"""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rules.ruleset import RuleSet, load_bytes
from schemas import RulesError
from tests.profiles import examples

ROOT = Path(__file__).resolve().parents[2]
# Every key a rule may have, so mutations land in each of them.
SEED = """\
defaults:
  push:
    title: "Update"
    push_id: token
rules:
  - name: delay-sms
    on: [shipment.delayed, shipment.*]
    when: data.delay_minutes >= 30 and data.customer is defined
    channel: sms
    to: ["{{ data.customer.phone }}", "{{ data.backup | default('') }}"]
    body: "Hi {{ data.customer.name | title }}, {{ data.delay_minutes | humanize_minutes }}"
    quiet_hours: "21:00-08:00"
    timezone: "{{ data.customer.tz }}"
    urgent: false
    throttle: {key: "{{ event.subject }}", limit: 1, window: 30m}
  - name: delay-push
    on: shipment.delayed
    channel: push
    to: "{{ data.customer.push_tokens }}"
    body: "ETA {{ data.eta | localtime('Europe/Berlin') }}"
    data:
      shipment_id: "{{ data.shipment_id }}"
  - name: before-eta
    on: shipment.eta_set
    channel: sms
    to: "{{ data.customer.phone }}"
    body: "Soon."
    at: "{{ data.eta }}"
    offset: -30m
    cancel_on: shipment.cancelled
    description: a reminder
    enabled: true
"""
SEEDS = [SEED.encode(), (ROOT / "rules.yaml").read_bytes()]
FRAGMENTS = [
    # YAML
    ": ", "- ", "{", "}", "[", "]", "&a ", "*a", "<<: *a", "? ", "|", ">", "\t", "'", '"',
    "\n  ", "\n", "~", "null", "0x1F", "1e400", "2024-01-01", "!!binary ",
    "!!python/object:os.system ",
    "%YAML 1.1\n", "---\n", "...\n", "\x00", "\x07", "\ufeff", "\ud800", "é", "#",
    # Jinja
    "{{", "}}", "{%", "%}", "{#", "#}", " | humanise_minutes", " is nonsense", " | default(",
    ".__class__", "[0]", "(", ")", "{% for x in data %}", "{% endfor %}", "{% if data.x %}",
    "{% endif %}", "{% macro m() %}", "{% set x = 1 %}", "{% raw %}", "~", "**", "self",
    "{% extends 'x' %}", "{% include 'x' %}", "{% break %}", "{% filter nope %}x{% endfilter %}",
    "((((((((((((((((((((", "[[[[[[[[[[[[[[[[[[[[", "1 if x else",
    # keys and values
    "name: ", "on: ", "channel: fax", "channel: push", "push_id: fid", "push_id: []",
    "throttle: 3", "quiet_hours: 25:00-99:00", "timezone: Mars/Base", "timezone: ../x",
    "delay: -1d", "offset: 99999999999d", "window: 0s", "limit: -1", "data: {a: 1}",
    "to: []", "to: [1, 2]", "body: ", "when: ", "at: ", "enabled: maybe",
]  # fmt: skip
PROBLEM = re.compile(r"^rules\.yaml:\d+:\d+: \S")


def loads_or_refuses(raw: bytes) -> None:
    try:
        rules = load_bytes(raw, "rules.yaml")
    except RulesError as exc:
        assert exc.problems, "a refusal names at least one problem"
        for line in exc.problems:
            assert PROBLEM.match(line), line
    else:
        assert isinstance(rules, RuleSet)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete", "fragment"]))
        if kind == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 40))]
        else:
            data[at:at] = draw(st.sampled_from(FRAGMENTS)).encode("utf-8", "surrogatepass")
    return bytes(data)


FUZZ = settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)


@FUZZ
@given(mutated())
@example(SEED.replace("| title", "| titel").encode())
@example(SEED.replace("offset: -30m", "offset: 99999999999d").encode())
@example(SEED.replace("window: 30m", "window: 99999999999d").encode())
@example(SEED.replace(">= 30", ">= 30 %}{% if x").encode())
@example(SEED.replace('"Soon."', '"{% if x %}{{ y | nope }}{% endif %}"').encode())
@example(SEED.replace('"Soon."', '"Soon.\x07"').encode())
@example(SEED.replace("rules:", "rules: " + "[" * 3000).encode())
@example(SEED.encode()[:-1] + b"\xff")
def test_a_mutated_file_loads_or_is_refused_with_positions(raw: bytes) -> None:
    loads_or_refuses(raw)


@FUZZ
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(min_value=0), st.sampled_from(FRAGMENTS)), min_size=1,
             max_size=6),
)  # fmt: skip
def test_fragments_in_every_value_load_or_are_refused_with_positions(
    seed: bytes, fragments: list[tuple[int, str]]
) -> None:
    text = seed.decode()
    for spot, fragment in fragments:
        # Into a value (templates and conditions among them): just after some `key: `.
        spots = [m.end() for m in re.finditer(r"(?m)^\s+(?:- )?\w+: ", text)] or [0]
        at = spots[spot % len(spots)]
        text = text[:at] + fragment + text[at:]
    loads_or_refuses(text.encode("utf-8", "surrogatepass"))


JINJA_TOKENS = [
    "data", "event", ".", "x", "customer", "(", ")", "[", "]", "|", "default", "title", "nope",
    "humanize_minutes", "localtime", "is", "defined", "nonsense", "not", "and", "or", "if",
    "else", "1", "0", "'s'", "+", "-", "*", "**", "/", "//", "%", "~", ",", ":", "{", "}",
    "==", "<", "in", "range", "lipsum", "self", "loop", "_x", "__class__", "=", "None",
    "true", "{{", "}}", "{%", "%}", "endif", "for", "endfor", "set", "macro", "call",
]  # fmt: skip
token_soup = st.lists(st.sampled_from(JINJA_TOKENS), min_size=1, max_size=12).map(" ".join)
ATOMS = ["data.x", "data.customer.name", "event.subject", "1", "2.5", "'s'", "None", "true",
         "[1, 2]", "data['k']", "loop", "x"]  # fmt: skip
FILTERS = ["default('')", "title", "humanize_minutes", "localtime('UTC')", "length", "nope",
           "join(',')", "e164", "int", "list", "first", "mask"]  # fmt: skip
TESTS = ["defined", "none", "number", "nonsense", "sameas 1", "divisibleby 3"]
# Well-formed expressions, so the compilers (Jinja's and the fast path's) get to work on them.
well_formed = st.recursive(
    st.sampled_from(ATOMS),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(FILTERS)).map(lambda t: f"({t[0]} | {t[1]})"),
        st.tuples(inner, st.sampled_from(TESTS)).map(lambda t: f"({t[0]} is {t[1]})"),
        st.tuples(
            inner,
            st.sampled_from(
                ["+", "-", "*", "/", "//", "%", "**", "~", "==", "<", "in", "and", "or"]
            ),
            inner,
        ).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(inner, inner, inner).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
        inner.map(lambda e: f"(not {e})"),
        inner.map(lambda e: f"range({e})"),
        st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"),
    ),
    max_leaves=8,
)
expressions = st.one_of(well_formed, token_soup)
TARGETS = {"to": '"{{ data.customer.phone }}"', "title": '"Update"',
           "timezone": '"{{ data.customer.tz }}"', "key": '"{{ event.subject }}"'}  # fmt: skip


def quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@FUZZ
@given(expressions, expressions, st.sampled_from(sorted(TARGETS)), expressions)
def test_random_jinja_in_conditions_and_templates_loads_or_is_refused(
    when: str, body: str, key: str, other: str
) -> None:
    """Jinja's parser and compiler, and the fast path's, on what product staff might type."""
    text = SEED.replace("data.delay_minutes >= 30 and data.customer is defined", quoted(when))
    text = text.replace('"Soon."', quoted("{{ " + body + " }}"))
    text = text.replace(TARGETS[key], quoted("{{ " + other + " }}"), 1)
    loads_or_refuses(text.encode())


@settings(max_examples=examples(200), deadline=None, database=None)
@given(st.text(max_size=300))
def test_any_text_loads_or_is_refused_with_positions(text: str) -> None:
    loads_or_refuses(text.encode("utf-8", "surrogatepass"))


def test_the_seed_itself_loads() -> None:
    assert len(load_bytes(SEED.encode()).rules) == 3
