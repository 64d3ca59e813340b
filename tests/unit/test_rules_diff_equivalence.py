"""Routing only the rules that differ finds exactly what routing everything twice finds."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.ruleset import RuleSet, load_text
from rules.tools.diff import Differ, Difference, compare, plan, route_each
from schemas import Event
from tests.profiles import examples

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
STALE = timedelta(hours=1)
NAMES = ("a", "b", "c", "d")


@st.composite
def rule(draw: st.DrawFn, name: str) -> dict[str, Any]:
    channel = draw(st.sampled_from(["sms", "push"]))
    out: dict[str, Any] = {
        "name": name,
        "on": draw(st.sampled_from(["shipment.delayed", "shipment.*", ["order.placed", "x.y"]])),
        "channel": channel,
        "to": draw(
            st.sampled_from(
                [
                    "{{ data.customer.phone }}",
                    "{{ data.customer.tokens }}",
                    "{{ data.customer.alt }}",
                ]
            )
        ),
        "body": draw(
            st.sampled_from(
                [
                    "Hi {{ data.customer.name }}",
                    "Late {{ data.delay }} min",
                    "Late {{ data.delay | humanize_minutes }}",
                ]
            )
        ),
    }
    when = draw(st.sampled_from([None, "data.delay >= 30", "data.delay < 100"]))
    if when:
        out["when"] = when
    delay = draw(st.sampled_from([None, "10m", "2h"]))
    if delay:
        out["delay"] = delay
    if channel == "push" and draw(st.booleans()):
        out["title"] = draw(st.sampled_from(["Late", "{{ data.customer.name }}"]))
    if not draw(st.booleans()):
        out["enabled"] = draw(st.booleans())
    return out


@st.composite
def rule_files(draw: st.DrawFn) -> tuple[RuleSet, RuleSet]:
    """Two files sharing some rules verbatim, changing, adding and removing others."""
    old: list[dict[str, Any]] = []
    new: list[dict[str, Any]] = []
    for name in NAMES:
        before = draw(st.none() | rule(name))
        choice = draw(st.sampled_from(["same", "same", "other", "gone"]))
        after = before if choice == "same" else draw(rule(name)) if choice == "other" else None
        if before is not None:
            old.append(before)
        if after is not None:
            new.append(after)
    new = draw(st.permutations(new))  # order must not matter either
    return (
        load_text(yaml.safe_dump({"rules": old}), "old.yaml"),
        load_text(yaml.safe_dump({"rules": new}), "new.yaml"),
    )


@st.composite
def event(draw: st.DrawFn, n: int) -> Event:
    customer: dict[str, Any] = {
        "phone": draw(st.sampled_from(["+14155550100", "(415) 555-0101", "bad", ""])),
        "tokens": draw(st.lists(st.sampled_from(["t1", "t2", " "]), max_size=3)),
    }
    if draw(st.booleans()):
        customer["name"] = "Ann"
    if draw(st.booleans()):
        customer["alt"] = draw(st.sampled_from(["+14155550199", ["t1", "t3"]]))
    return Event(
        id=f"evt-{n}",
        type=draw(
            st.sampled_from(
                ["shipment.delayed", "shipment.delivered", "order.placed", "misc.other"]
            )
        ),
        data={"delay": draw(st.integers(0, 200)), "customer": customer},
        time=T0 + timedelta(minutes=draw(st.integers(-300, 300))),
    )


def naive(
    old: RuleSet, new: RuleSet, events: list[Event], now: datetime | None
) -> list[Difference]:
    """The obvious comparison: every event through all of OLD and all of NEW."""
    out: list[Difference] = []
    for e in events:
        at = now or e.time
        kwargs: dict[str, Any] = {"now": at, "default_region": "US", "stale_after": STALE}
        out += compare(e, route_each(e, old, **kwargs), route_each(e, new, **kwargs))
    return out


@settings(max_examples=examples(150), deadline=None)
@given(
    files=rule_files(),
    events=st.integers(0, 12).flatmap(lambda k: st.tuples(*(event(n) for n in range(k)))),
    fixed_now=st.booleans(),
)
def test_the_optimised_diff_equals_the_naive_one(
    files: tuple[RuleSet, RuleSet], events: tuple[Event, ...], fixed_now: bool
) -> None:
    old, new = files
    now = T0 if fixed_now else None
    differ = Differ(plan(old, new), now=now, examples=1_000)
    found = [d for e in events for d in differ.add(e)]
    expected = naive(old, new, list(events), now)
    assert found == expected
    counts = {name: r.counts for name, r in differ.report.rules.items() if r.total}
    by_rule: dict[str, Counter[Any]] = {}
    for d in expected:
        by_rule.setdefault(d.rule, Counter())[d.kind] += 1
    assert counts == by_rule
    assert [e for r in differ.report.rules.values() for e in r.examples] == sorted(
        expected, key=lambda d: list(differ.report.rules).index(d.rule)
    )
