"""Routing with quiet hours and throttles: fixed clocks, no servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from rules.routing import route
from rules.ruleset import load_text
from schemas import Channel, Event, NewNotification, Status, ThrottleKey

RULES = """
rules:
  - name: explicit-zone
    on: shipment.delayed
    channel: sms
    to: "{{ data.phone }}"
    body: "Late"
    quiet_hours: "21:00-08:00"
    timezone: "{{ data.tz }}"
    cancel_on: shipment.delivered
  - name: own-zone
    on: shipment.delayed
    channel: sms
    to: "{{ data.phone }}"
    body: "Late"
    quiet_hours: "21:00-08:00"
  - name: urgent
    on: shipment.delayed
    channel: sms
    to: "{{ data.phone }}"
    body: "Late"
    quiet_hours: "21:00-08:00"
    urgent: true
  - name: push-default-zone
    on: shipment.delayed
    channel: push
    to: "{{ data.tokens }}"
    body: "Late"
    quiet_hours: "21:00-08:00"
  - name: reminder
    on: shipment.delayed
    channel: sms
    to: "{{ data.phone }}"
    body: "Reminder"
    delay: 2h
    quiet_hours: "21:00-08:00"
    timezone: Europe/London
  - name: once-per-shipment
    on: shipment.delayed
    channel: sms
    to: "{{ data.phone }}"
    body: "Late again"
    throttle: {key: "{{ event.subject }}", limit: 2, window: 30m}
"""
RULESET = load_text(RULES)
SF = "+14155550100"  # America/Los_Angeles


def routed(now: datetime, **data: object) -> dict[str, NewNotification]:
    payload = {"phone": SF, "tz": "Europe/London", "tokens": ["tok-1"], **data}
    event = Event(id="e1", type="shipment.delayed", data=payload, time=now, subject="SHP-1")
    out = route(event, RULESET, now=now, default_timezone="America/New_York")
    return {n.rule: n for n in out.notifications}


def test_inside_the_explicit_zones_window_waits_for_its_end() -> None:
    # 23:30 GMT in London: quiet there until 08:00 GMT; 15:30 in San Francisco: open.
    out = routed(datetime(2026, 11, 25, 23, 30, tzinfo=UTC))
    held = out["explicit-zone"]
    assert (held.status, held.send_at) == (Status.SCHEDULED, datetime(2026, 11, 26, 8, tzinfo=UTC))
    assert held.quiet_zone == "Europe/London"
    assert held.cancel_on == ["shipment.delivered"]  # cancellable while it waits
    assert out["own-zone"].status is Status.PENDING


def test_the_numbers_own_zone_applies_without_a_timezone() -> None:
    # 06:00 UTC = 22:00 PST in San Francisco, 06:00 in London.
    out = routed(datetime(2026, 11, 25, 6, tzinfo=UTC))
    own = out["own-zone"]
    assert (own.status, own.quiet_zone) == (Status.SCHEDULED, "America/Los_Angeles")
    assert own.send_at == datetime(2026, 11, 25, 16, tzinfo=UTC)  # 08:00 PST


def test_urgent_ignores_quiet_hours() -> None:
    out = routed(datetime(2026, 11, 25, 6, tzinfo=UTC))
    assert out["urgent"].status is Status.PENDING and out["urgent"].send_at is None


def test_an_empty_zone_falls_back_to_the_number() -> None:
    out = routed(datetime(2026, 11, 25, 6, tzinfo=UTC), tz=None)
    assert out["explicit-zone"].quiet_zone == "America/Los_Angeles"


def test_a_push_token_has_no_zone_of_its_own_so_the_default_applies() -> None:
    # 03:00 UTC = 22:00 EST in New York, the default zone here.
    out = routed(datetime(2026, 11, 25, 3, tzinfo=UTC))
    push = out["push-default-zone"]
    assert (push.status, push.quiet_zone) == (Status.SCHEDULED, "America/New_York")
    assert push.send_at == datetime(2026, 11, 25, 13, tzinfo=UTC)


def test_a_delayed_reminder_due_at_night_waits_for_the_morning() -> None:
    # Event at 20:00 GMT; due at 22:00 GMT, inside London's quiet hours.
    out = routed(datetime(2026, 11, 25, 20, tzinfo=UTC))
    assert out["reminder"].send_at == datetime(2026, 11, 26, 8, tzinfo=UTC)
    out = routed(datetime(2026, 11, 25, 10, tzinfo=UTC))
    assert out["reminder"].send_at == datetime(2026, 11, 25, 12, tzinfo=UTC)  # plain delay
    assert out["reminder"].quiet_zone is None


def test_an_unknown_zone_fails_only_that_notification() -> None:
    out = routed(datetime(2026, 11, 25, 20, tzinfo=UTC), tz="Mars/Base")  # noon in SF
    bad = out["explicit-zone"]
    assert (bad.status, bad.error_code) == (Status.FAILED, "template_error")
    assert "Mars/Base" in (bad.error_message or "")
    assert out["own-zone"].status is Status.PENDING


def test_throttled_rules_carry_their_rendered_key() -> None:
    out = routed(datetime(2026, 11, 25, 12, tzinfo=UTC))
    assert out["once-per-shipment"].throttle == ThrottleKey(
        key="SHP-1", limit=2, window_seconds=1800
    )
    assert out["own-zone"].throttle is None


def test_failed_rows_are_neither_held_nor_counted() -> None:
    out = routed(datetime(2026, 11, 25, 6, tzinfo=UTC), phone="not a number")
    for rule in ("own-zone", "once-per-shipment"):
        n = out[rule]
        assert (n.status, n.error_code, n.throttle) == (Status.FAILED, "invalid_recipient", None)
        assert n.send_at is None


def test_every_minute_of_a_dst_day_goes_now_or_at_eight_local() -> None:
    # Across London's spring-forward night: go now, or wait for 08:00 local, nothing else.
    start = datetime(2026, 3, 28, 12, tzinfo=UTC)
    for minute in range(0, 24 * 60, 17):
        now = start + timedelta(minutes=minute)
        n = routed(now)["explicit-zone"]
        if n.status is Status.SCHEDULED:
            assert n.send_at is not None and n.send_at > now
            local = n.send_at.astimezone(ZoneInfo("Europe/London"))
            assert (local.hour, local.minute) == (8, 0)
        else:
            assert n.channel is Channel.SMS and n.send_at is None
