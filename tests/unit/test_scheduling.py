"""Scheduling decisions in routing, with a controllable clock: delay, at/offset, late, stale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rules.routing import route
from rules.ruleset import RuleSet, load_text
from schemas import Event, Status

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
RULES = """
rules:
  - name: later
    on: shipment.delayed
    channel: sms
    to: "{{ data.phone }}"
    body: "Reminder"
    delay: 10m
    cancel_on: [shipment.delivered, "shipment.cancel*"]
  - name: at-eta
    on: shipment.eta
    channel: sms
    to: "{{ data.phone }}"
    body: "Arriving soon"
    at: "{{ data.eta }}"
    offset: -30m
"""


def event(event_type: str, data: dict[str, object], time: datetime = T0) -> Event:
    return Event(id="e1", type=event_type, data=data, time=time, subject="S1")


@pytest.fixture
def rules() -> RuleSet:
    return load_text(RULES, "rules.yaml")


def test_delay_schedules_after_the_event_time(rules: RuleSet) -> None:
    out = route(event("shipment.delayed", {"phone": "+14155550100"}), rules, now=T0)
    [n] = out.notifications
    assert n.status is Status.SCHEDULED
    assert n.send_at == T0 + timedelta(minutes=10)
    assert n.cancel_on == ["shipment.delivered", "shipment.cancel*"]
    assert n.event_subject == "S1"


def test_at_renders_a_time_and_applies_the_offset(rules: RuleSet) -> None:
    data = {"phone": "+14155550100", "eta": "2026-11-25T15:00:00+01:00"}
    [n] = route(event("shipment.eta", data), rules, now=T0).notifications
    assert n.status is Status.SCHEDULED
    assert n.send_at == datetime(2026, 11, 25, 13, 30, tzinfo=UTC)


def test_a_row_already_due_is_sent_at_once(rules: RuleSet) -> None:
    # A consumer backlog: the event is 20 minutes old, the reminder was due 10 minutes ago.
    now = T0 + timedelta(minutes=20)
    [n] = route(event("shipment.delayed", {"phone": "+14155550100"}), rules, now=now).notifications
    assert n.status is Status.PENDING and n.error_code is None


def test_a_row_overdue_past_the_staleness_limit_expires(rules: RuleSet) -> None:
    now = T0 + timedelta(hours=3)
    out = route(
        event("shipment.delayed", {"phone": "+14155550100"}),
        rules,
        now=now,
        stale_after=timedelta(hours=1),
    )
    [n] = out.notifications
    assert (n.status, n.error_code) == (Status.FAILED, "expired")


def test_at_without_timezone_is_a_template_error(rules: RuleSet) -> None:
    data = {"phone": "+14155550100", "eta": "2026-11-25T15:00:00"}
    [n] = route(event("shipment.eta", data), rules, now=T0).notifications
    assert (n.status, n.error_code) == (Status.FAILED, "template_error")


def test_cancelling_types_cover_every_rules_cancel_on(rules: RuleSet) -> None:
    pattern = rules.cancelling_types()
    assert pattern is not None
    assert pattern.match("shipment.delivered") and pattern.match("shipment.cancelled")
    assert not pattern.match("shipment.delayed")


def test_event_types_are_the_literal_ones_in_on_and_cancel_on(rules: RuleSet) -> None:
    """notify_events_total starts at 0 for these; `shipment.cancel*` names no knowable type."""
    assert rules.event_types() == {"shipment.delayed", "shipment.eta", "shipment.delivered"}
