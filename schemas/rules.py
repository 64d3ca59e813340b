"""The rules file product staff edit (docs/interfaces.md section 2), as typed data."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

import msgspec

# Plain str aliases: msgspec.Meta constraints crash the interpreter at exit (GC of the type
# node; msgspec issue #717), so the ruleset checker validates these patterns itself.
RuleName = str
EventPattern = str
Duration = str
RULE_NAME = r"^[a-z0-9_.-]{1,100}$"
EVENT_PATTERN = r"^[A-Za-z0-9_.*?\[\]!-]{1,200}$"
DURATION = r"^-?\d+(\.\d+)?[smhd]$"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """A DURATION string (`30m`, `1.5h`) as a timedelta."""
    return timedelta(seconds=float(text[:-1]) * _UNITS[text[-1]])


def is_duration(text: str) -> bool:
    """`text` is a DURATION, and one a timedelta can hold (`99999999999d` is not)."""
    if not re.match(DURATION, text):
        return False
    try:
        parse_duration(text)
    except OverflowError:
        return False
    return True


# "21:00-08:00": local wall-clock times, the window may cross midnight.
QUIET_HOURS = r"^(?:[01]\d|2[0-3]):[0-5]\d-(?:[01]\d|2[0-3]):[0-5]\d$"
ChannelName = Literal["sms", "push"]
# Which FCM identifier a push rule's `to` renders: a registration token (from getToken(),
# what almost every app stores) or a Firebase Installation ID. schemas.PushId has the values.
PushIdName = Literal["token", "fid"]
PUSH_ID_NAMES: tuple[str, ...] = ("token", "fid")


class Throttle(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """At most `limit` notifications of a rule per rendered `key` and recipient per `window`."""

    key: str
    limit: int
    window: Duration


class Rule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One routing rule as written in YAML; templates are still source text."""

    name: RuleName
    on: EventPattern | list[EventPattern]
    channel: ChannelName
    to: str | list[str]
    body: str | None = None
    when: str | None = None
    title: str | None = None
    data: dict[str, str] | None = None
    push_id: PushIdName | None = None  # push only; unset: token
    enabled: bool = True
    delay: Duration | None = None
    at: str | None = None
    offset: Duration | None = None
    cancel_on: EventPattern | list[EventPattern] | None = None
    description: str | None = None
    # Sending politely (docs/interfaces.md section 8).
    quiet_hours: str | None = None
    timezone: str | None = None
    urgent: bool = False
    throttle: Throttle | None = None

    def patterns(self) -> list[str]:
        return [self.on] if isinstance(self.on, str) else list(self.on)

    def cancel_patterns(self) -> list[str]:
        if self.cancel_on is None:
            return []
        return [self.cancel_on] if isinstance(self.cancel_on, str) else list(self.cancel_on)


class ChannelDefaults(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Values a rule of that channel inherits when it does not set them."""

    when: str | None = None
    body: str | None = None
    title: str | None = None
    data: dict[str, str] | None = None
    push_id: PushIdName | None = None
    delay: Duration | None = None
    cancel_on: EventPattern | list[EventPattern] | None = None
    quiet_hours: str | None = None
    timezone: str | None = None


class Defaults(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    sms: ChannelDefaults | None = None
    push: ChannelDefaults | None = None


class RulesFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The whole file."""

    rules: list[Rule]
    defaults: Defaults | None = None
    version: int | None = None
