"""Routing through the fast template path decides exactly what Jinja alone decides.

The consumer routes with rules/fast_templates.py's closures; `slow_rules` compiles the same
file with Jinja alone (the reference). For any rules and events the two must produce the
same notifications, field for field, in the same order, and decline the same rules. The
per-type cache of matching rules must agree with testing every rule, and `explain` must
give each rule that produced nothing exactly one reason.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import msgspec
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules import rendering
from rules.routing import Routed, explain, route
from rules.ruleset import RuleSet, load_text
from schemas import Event
from tests.profiles import examples

NOW = datetime(2026, 11, 25, 21, 30, tzinfo=UTC)


TO = [
    "{{ data.phone }}",
    "{{ data.tokens }}",
    "{{ data.missing }}",
    "{{ data.tokens[0] }}",
    "{{ [data.phone, data.alt] }}",
    "+1 415 555 0100",
]
BODY = [
    "Hi {{ data.name }}",
    "Late {{ data.delay | humanize_minutes }}",
    "{{ data.name | upper }} {{ event.subject }} {{ event.time | localtime('Europe/Paris') }}",
    "{{ data.nope }}",
    "{% if data.delay > 30 %}long{% else %}short{% endif %} wait",
    "plain",
]
WHEN = [None, "data.delay >= 30", "data.delay is defined and data.name", "data.nope > 1"]
ON = ["shipment.delayed", "shipment.*", ["order.placed", "shipment.delay?"], "order.*"]


@st.composite
def rule(draw: st.DrawFn, name: str) -> dict[str, Any]:
    channel = draw(st.sampled_from(["sms", "push"]))
    out: dict[str, Any] = {
        "name": name,
        "on": draw(st.sampled_from(ON)),
        "channel": channel,
        "to": draw(st.sampled_from(TO)),
        "body": draw(st.sampled_from(BODY)),
    }
    if when := draw(st.sampled_from(WHEN)):
        out["when"] = when
    timing = draw(st.sampled_from(["now", "delay", "at", "zero"]))
    if timing == "delay":
        out["delay"] = draw(st.sampled_from(["10m", "2h", "3d"]))
    elif timing == "zero":
        out["delay"] = "0s"
    elif timing == "at":
        out["at"] = draw(st.sampled_from(["{{ data.eta }}", "{{ data.name }}"]))
        out["offset"] = draw(st.sampled_from(["-30m", "0s"]))
    if timing != "now" and draw(st.booleans()):
        out["cancel_on"] = draw(st.sampled_from(["shipment.delivered", ["a.*", "shipment.[!x]*"]]))
    if draw(st.booleans()):
        out["quiet_hours"] = draw(st.sampled_from(["21:00-08:00", "09:00-17:00"]))
        if draw(st.booleans()):
            out["timezone"] = draw(st.sampled_from(["{{ data.tz }}", "Asia/Tokyo"]))
        out["urgent"] = draw(st.booleans())
    if draw(st.booleans()):
        out["throttle"] = {"key": "{{ event.subject }}", "limit": 1, "window": "30m"}
    if channel == "push":
        out.update(draw(push_keys()))
    if not draw(st.integers(0, 4)):
        out["enabled"] = False
    return out


@st.composite
def push_keys(draw: st.DrawFn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if draw(st.booleans()):
        out["title"] = draw(st.sampled_from(["Late", "{{ data.name }}", "{{ data.nope }}"]))
    if draw(st.booleans()):
        out["data"] = {"id": "{{ event.id }}", "d": "{{ data.delay }}"}
    if draw(st.booleans()):
        out["push_id"] = draw(st.sampled_from(["token", "fid"]))
    return out


@st.composite
def rule_files(draw: st.DrawFn) -> str:
    count = draw(st.integers(1, 4))
    return yaml.safe_dump({"rules": [draw(rule(f"r{i}")) for i in range(count)]})


@st.composite
def events(draw: st.DrawFn) -> Event:
    data: dict[str, Any] = {
        "phone": draw(st.sampled_from(["+14155550100", "+442071838750", "415-555-0101", "x", 7])),
        "alt": draw(st.sampled_from(["+14155550100", "+33142685300", None])),
        "tokens": draw(st.lists(st.sampled_from(["tok-1", "tok-2", "bad token", ""]), max_size=3)),
        "name": draw(st.sampled_from(["Ann", "", "Zoë"])),
        "delay": draw(st.sampled_from([5, 30, 45, 90, "x"])),
        "eta": draw(st.sampled_from(["2026-11-26T08:30:00+01:00", "2026-11-25T10:00:00Z", "soon"])),
        "tz": draw(st.sampled_from(["Europe/London", "", "Mars/Base"])),
    }
    for key in draw(st.lists(st.sampled_from(list(data)), max_size=2)):
        data.pop(key, None)
    return Event(
        id=draw(st.sampled_from(["e-1", "e-2"])),
        type=draw(st.sampled_from(["shipment.delayed", "shipment.delivered", "order.placed"])),
        data=data,
        time=draw(st.sampled_from([NOW, NOW - timedelta(hours=3), NOW + timedelta(minutes=5)])),
        subject=draw(st.sampled_from([None, "SHP-1"])),
    )


def slow_rules(text: str) -> RuleSet:
    """The same file compiled with Jinja alone."""
    with (
        mock.patch.object(
            rendering, "compile_template", functools.partial(rendering.compile_template, fast=False)
        ),
        mock.patch.object(
            rendering,
            "compile_condition",
            functools.partial(rendering.compile_condition, fast=False),
        ),
    ):
        return load_text(text)


def encoded(routed: Routed) -> bytes:
    return msgspec.json.encode(routed.notifications)


@settings(max_examples=examples(600), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule_files(), st.lists(events(), min_size=1, max_size=4))
def test_the_fast_path_routes_as_jinja_does(text: str, batch: list[Event]) -> None:
    fast, slow = load_text(text), slow_rules(text)
    for event in batch:  # several events: the per-type cache of matching rules is reused
        expected = route(event, slow, now=NOW)
        routed = route(event, fast, now=NOW)
        assert encoded(routed) == encoded(expected)
        assert routed.declined == expected.declined
        everyone = [r for r in fast.rules if r.rule.enabled and r.matches(event.type)]
        assert list(fast.matching(event.type)) == everyone
        produced = {n.rule for n in routed.notifications}
        reasons = [name for name, _ in explain(event, fast, routed)]
        assert len(reasons) == len(set(reasons)) and not produced & set(reasons)
        assert set(routed.declined) <= set(reasons)
