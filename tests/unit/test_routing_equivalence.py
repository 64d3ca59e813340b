"""The consumer's routing decides exactly what the plain routing did, for any rules and event.

`reference_route` is routing as it was before it was made fast (commit c6e1844): every
template through Jinja, per-event look-ups of each rule's channel, push id and cancel
patterns, every rule tested against the event type, politeness applied to every row. The
consumer's path (fast templates, rules matched once per event type, `explain=False`) must
produce the same notifications, field for field, in the same order.
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

from notify import countries, segments
from rules import politeness, rendering
from rules.recipients import InvalidRecipient, normalise
from rules.routing import (
    Routed,
    _error,
    _initial_status,
    _send_at,
    context,
    idempotency_key,
    route,
)
from rules.ruleset import CompiledRule, RuleSet, load_text
from schemas import Channel, Event, NewNotification, PushId, Status
from tests.profiles import examples

NOW = datetime(2026, 11, 25, 21, 30, tzinfo=UTC)


def reference_route(
    event: Event,
    rules: RuleSet,
    *,
    now: datetime,
    default_region: str = "US",
    stale_after: timedelta = timedelta(hours=1),
    default_timezone: str = "UTC",
) -> Routed:
    routed = Routed()
    ctx = context(event)
    for rule in rules.rules:
        if not rule.rule.enabled:
            routed.skipped.append((rule.name, "disabled"))
            continue
        if not rule.matches(event.type):
            routed.skipped.append((rule.name, f"type {event.type!r} does not match {rule.rule.on}"))
            continue
        decided = _reference_decide(
            event, rule, ctx, rules.version, now, default_region, stale_after, default_timezone
        )
        if decided is None:
            routed.skipped.append((rule.name, f"condition is false: {rule.rule.when}"))
        else:
            routed.notifications.extend(decided)
    return routed


def _reference_decide(
    event: Event,
    rule: CompiledRule,
    ctx: dict[str, Any],
    version: str,
    now: datetime,
    region: str,
    stale_after: timedelta,
    zone: str = "UTC",
) -> list[NewNotification] | None:
    channel = Channel(rule.rule.channel)
    base: dict[str, Any] = {
        "event_id": event.id,
        "event_type": event.type,
        "event_subject": event.subject,
        "rule": rule.name,
        "channel": channel,
        "rules_version": version,
        "cancel_on": rule.rule.cancel_patterns(),
        "event_time": event.time,
        "push_id": PushId(rule.rule.push_id or PushId.TOKEN) if channel is Channel.PUSH else None,
    }

    def cost(body: str) -> dict[str, Any]:
        if channel is not Channel.SMS:
            return {}
        counted = segments.count(body)
        return {"segments": counted.segments, "encoding": counted.encoding}

    def failed(recipient: str, code: str, exc: BaseException, body: str = "") -> NewNotification:
        key = idempotency_key(event.id, rule.name, recipient)
        return NewNotification(
            idempotency_key=key,
            recipient=recipient,
            body=body,
            status=Status.FAILED,
            error_code=code,
            error_message=_error(exc),
            **base,
            **cost(body),
        )

    try:
        if rule.when is not None and not rule.when(ctx):
            return None
        raw_to = rule.to(ctx)
    except Exception as exc:  # noqa: BLE001
        return [failed("", "template_error", exc)]
    recipients = raw_to if isinstance(raw_to, list | tuple) else [raw_to]
    try:
        body = str(rule.body(ctx))
        title = str(rule.title(ctx)) if rule.title else None
        data = {k: str(r(ctx)) for k, r in rule.data.items()} or None
        send_at = _send_at(event, rule, ctx)
        manners = politeness.render(rule, ctx)
    except Exception as exc:  # noqa: BLE001
        return [failed(str(r), "template_error", exc) for r in recipients] or None
    out: list[NewNotification] = []
    seen: set[str] = set()
    for raw in recipients:
        try:
            recipient = normalise(channel, raw, region)
        except InvalidRecipient as exc:
            out.append(failed(str(raw), "invalid_recipient", exc, body))
            continue
        if recipient in seen:
            continue
        seen.add(recipient)
        status, code, message = _initial_status(send_at, now, stale_after)
        out.append(
            NewNotification(
                idempotency_key=idempotency_key(event.id, rule.name, recipient),
                recipient=recipient,
                body=body,
                title=title,
                data=data,
                status=status,
                send_at=send_at,
                error_code=code,
                error_message=message,
                country=countries.country_of(recipient) if channel is Channel.SMS else None,
                **base,
                **cost(body),
            )
        )
    return [politeness.apply(n, rule, manners, now=now, default_timezone=zone) for n in out]


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
def test_the_consumer_routes_as_the_reference_does(text: str, batch: list[Event]) -> None:
    fast, slow = load_text(text), slow_rules(text)
    for event in batch:  # several events: the per-type cache of matching rules is reused
        expected = reference_route(event, slow, now=NOW)
        consumer = route(event, fast, now=NOW, explain=False)
        preview = route(event, fast, now=NOW)
        assert encoded(consumer) == encoded(expected)
        assert encoded(preview) == encoded(expected)
        assert preview.skipped == expected.skipped
        assert consumer.skipped == []
