"""Match an event against the rules and decide its notifications. Pure: no I/O."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import msgspec

from notify import countries, segments
from rules import politeness, push_limits
from rules.recipients import InvalidRecipient, normalise
from rules.ruleset import CompiledRule, RuleSet
from schemas import Channel, Event, NewNotification, Status

_MAX_ERROR = 500
COUNTRY_NOT_ALLOWED = "country_not_allowed"


def idempotency_key(event_id: str, rule: str, recipient: str) -> str:
    """One key per (event id, rule name, recipient); length-prefixed so no two tuples collide."""
    return hashlib.sha256(msgspec.json.encode([event_id, rule, recipient])).hexdigest()


@dataclass
class Routed:
    """What one event produced: notifications to insert, and the rules whose type matched
    but whose condition was false (`explain` says why each other rule produced nothing)."""

    notifications: list[NewNotification] = field(default_factory=list)
    declined: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Options:
    """How an event is routed, apart from the event and the rules."""

    now: datetime
    default_region: str = "US"
    stale_after: timedelta = timedelta(hours=1)
    default_timezone: str = "UTC"
    # NOTIFY_SMS_COUNTRIES; None: any.
    sms_countries: frozenset[str] | None = None


def context(event: Event) -> dict[str, Any]:
    return {"event": event.template_view(), "data": event.data}


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:_MAX_ERROR]


def route(
    event: Event,
    rules: RuleSet,
    *,
    now: datetime,
    default_region: str = "US",
    stale_after: timedelta = timedelta(hours=1),
    default_timezone: str = "UTC",
    sms_countries: frozenset[str] | None = None,
) -> Routed:
    """The event's notifications, from the enabled rules whose `on` matches its type. An SMS
    to a country not in `sms_countries` fails `country_not_allowed`."""
    options = Options(now, default_region, stale_after, default_timezone, sms_countries)
    routed = Routed()
    ctx = context(event)
    for rule in rules.matching(event.type):
        decided = _decide(event, rule, ctx, rules.version, options)
        if decided is None:
            routed.declined.append(rule.name)
        else:
            routed.notifications.extend(decided)
    return routed


def explain(event: Event, rules: RuleSet, routed: Routed) -> list[tuple[str, str]]:
    """(rule, why) for each rule that produced nothing for this event (`rules preview`)."""
    declined = set(routed.declined)
    why: list[tuple[str, str]] = []
    for rule in rules.rules:
        if not rule.rule.enabled:
            why.append((rule.name, "disabled"))
        elif not rule.matches(event.type):
            why.append((rule.name, f"type {event.type!r} does not match {rule.rule.on}"))
        elif rule.name in declined:
            why.append((rule.name, f"condition is false: {rule.rule.when}"))
    return why


def _failed(
    event: Event,
    rule: CompiledRule,
    version: str,
    recipient: str,
    code: str,
    exc: BaseException | str,
    body: str = "",
    country: str | None = None,
) -> NewNotification:
    sms = segments.count(body) if rule.channel is Channel.SMS else None
    return NewNotification(
        idempotency_key=idempotency_key(event.id, rule.name, recipient),
        event_id=event.id,
        event_type=event.type,
        event_subject=event.subject,
        rule=rule.name,
        channel=rule.channel,
        recipient=recipient,
        body=body,
        push_id=rule.push_id,
        status=Status.FAILED,
        cancel_on=rule.cancel_on,
        error_code=code,
        error_message=exc if isinstance(exc, str) else _error(exc),
        rules_version=version,
        event_time=event.time,
        segments=None if sms is None else sms.segments,
        encoding=None if sms is None else sms.encoding,
        country=country,
    )


def _decide(
    event: Event, rule: CompiledRule, ctx: dict[str, Any], version: str, options: Options
) -> list[NewNotification] | None:
    try:
        if rule.when is not None and not rule.when(ctx):
            return None
        raw_to = rule.to(ctx)
    except Exception as exc:  # noqa: BLE001 - any template failure fails this rule only
        return [_failed(event, rule, version, "", "template_error", exc)]
    recipients = raw_to if isinstance(raw_to, list | tuple) else [raw_to]
    try:
        body = str(rule.body(ctx))
        title = str(rule.title(ctx)) if rule.title else None
        data = {k: str(r(ctx)) for k, r in rule.data.items()} if rule.data else None
        send_at = _send_at(event, rule, ctx)
        manners = politeness.render(rule, ctx)
    except Exception as exc:  # noqa: BLE001 - a template may raise anything: this rule fails
        failed = [_failed(event, rule, version, str(r), "template_error", exc) for r in recipients]
        return failed or None
    channel = rule.channel
    # FCM refuses the push whole (INVALID_ARGUMENT): fail it here, without the call.
    oversized = push_limits.too_large(title, body, data) if channel is Channel.PUSH else None
    # Counted once per body: every recipient of this rule and event gets the same one.
    sms = segments.count(body) if channel is Channel.SMS else None
    out: list[NewNotification] = []
    seen: set[str] = set()
    for raw in recipients:
        try:
            recipient = normalise(channel, raw, options.default_region)
        except InvalidRecipient as exc:
            out.append(_failed(event, rule, version, str(raw), "invalid_recipient", exc, body))
            continue
        if recipient in seen:
            continue
        seen.add(recipient)
        if oversized is not None:
            out.append(_failed(event, rule, version, recipient, "message_too_large", oversized,
                               body))  # fmt: skip
            continue
        country = None if sms is None else countries.country_of(recipient)
        if sms is not None and not countries.allowed(country, options.sms_countries):
            refused = f"SMS to {country or 'an unknown country'} is not allowed"
            out.append(_failed(event, rule, version, recipient, COUNTRY_NOT_ALLOWED, refused,
                               body, country))  # fmt: skip
            continue
        status, code, message = _initial_status(send_at, options.now, options.stale_after)
        out.append(
            NewNotification(
                idempotency_key=idempotency_key(event.id, rule.name, recipient),
                event_id=event.id,
                event_type=event.type,
                event_subject=event.subject,
                rule=rule.name,
                channel=channel,
                recipient=recipient,
                body=body,
                title=title,
                data=data,
                push_id=rule.push_id,
                status=status,
                send_at=send_at,
                cancel_on=rule.cancel_on,
                error_code=code,
                error_message=message,
                rules_version=version,
                event_time=event.time,
                segments=None if sms is None else sms.segments,
                encoding=None if sms is None else sms.encoding,
                country=country,
            )
        )
    if not politeness.applies(rule, manners):
        return out
    zone = options.default_timezone
    return [politeness.apply(n, rule, manners, now=options.now, default_timezone=zone) for n in out]


def _send_at(event: Event, rule: CompiledRule, ctx: dict[str, Any]) -> datetime | None:
    if rule.delay is not None:
        return event.time + rule.delay
    if rule.at is not None:
        value = rule.at(ctx)
        when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        if when.tzinfo is None:
            raise ValueError(f"'at' rendered {value!r}, which has no timezone")
        return when + rule.offset
    return None


_PENDING: tuple[Status, str | None, str | None] = (Status.PENDING, None, None)


def _initial_status(
    send_at: datetime | None, now: datetime, stale_after: timedelta
) -> tuple[Status, str | None, str | None]:
    if send_at is None:
        return _PENDING
    if send_at > now:
        return Status.SCHEDULED, None, None
    if now - send_at > stale_after:
        return Status.FAILED, "expired", f"due at {send_at.isoformat()}, too late to send"
    return Status.PENDING, None, None
