"""Sending politely, as routing decides it: quiet hours and throttle keys. Pure: no I/O.

Routing calls `render` once per rule and event (inside its template-error guard) and
`apply` to each notification it builds. The throttle itself is counted by the store when the
row is inserted (notify/throttles.py): only the database sees every consumer at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from rules.quiet_hours import hold, zones_for_number
from rules.ruleset import CompiledRule
from schemas import Channel, NewNotification, Status, ThrottleKey

# Only rows still to be sent wait for the morning or count against a throttle.
_WAITING = frozenset({Status.PENDING, Status.SCHEDULED})


@dataclass(frozen=True)
class Manners:
    """One rule's politeness, rendered for one event."""

    timezone: str | None = None
    throttle: ThrottleKey | None = None


_PLAIN = Manners()


def render(rule: CompiledRule, ctx: dict[str, Any]) -> Manners:
    """Render `timezone` and the throttle key; raises like any template (-> template_error)."""
    if rule.timezone is None and rule.throttle_key is None:
        return _PLAIN  # most rules: nothing to render, nothing to allocate per event
    zone = None
    if rule.timezone is not None:
        value = rule.timezone(ctx)
        # An empty or null zone means "not known": the number's own zone applies.
        zone = str(value).strip() if value is not None else ""
        if zone:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"timezone rendered {zone!r}, not an IANA time zone") from None
    throttle = None
    spec = rule.rule.throttle
    if spec is not None and rule.throttle_key is not None and rule.throttle_window is not None:
        throttle = ThrottleKey(
            key=str(rule.throttle_key(ctx)),
            limit=spec.limit,
            window_seconds=rule.throttle_window.total_seconds(),
        )
    return Manners(timezone=zone or None, throttle=throttle)


def applies(rule: CompiledRule, manners: Manners) -> bool:
    """False when `apply` would return every notification as it is (most rules)."""
    return manners is not _PLAIN or rule.quiet_hours is not None


def zones_of(notification: NewNotification, manners: Manners) -> tuple[str, ...]:
    """The rule's zone, else the phone number's own zone(s); push tokens have none."""
    if manners.timezone:
        return (manners.timezone,)
    if notification.channel is Channel.SMS:
        return zones_for_number(notification.recipient)
    return ()


def apply(
    notification: NewNotification,
    rule: CompiledRule,
    manners: Manners,
    *,
    now: datetime,
    default_timezone: str,
) -> NewNotification:
    """Hold a notification due inside quiet hours until they end (status scheduled, and so
    cancellable by `cancel_on`), and attach its throttle key for the store to count."""
    if notification.status not in _WAITING or (manners is _PLAIN and rule.quiet_hours is None):
        return notification
    changes: dict[str, Any] = {}
    if manners.throttle is not None:
        changes["throttle"] = manners.throttle
    if rule.quiet_hours is not None and not rule.rule.urgent:
        due = max(notification.send_at or now, now)
        zones = zones_of(notification, manners)
        held = hold(due, rule.quiet_hours, zones, default_timezone)
        if held is not None:
            changes.update(status=Status.SCHEDULED, send_at=held.until, quiet_zone=held.zone)
    return msgspec.structs.replace(notification, **changes) if changes else notification
