"""The checks of one rule whose types are right: its name, durations and patterns, the keys
that only go together, and sending politely (docs/interfaces.md section 8). Pure."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rules.document import Path
from schemas import Rule
from schemas.rules import EVENT_PATTERN, QUIET_HOURS, RULE_NAME, is_duration, parse_duration

Where = Callable[[str], Path]


class Report(Protocol):
    """Where a problem goes: at `path` (its key, with `key`), saying `message`."""

    def __call__(self, path: Path, message: str, *, key: bool = False) -> None: ...


def check(rule: Rule, path: Path, at: Where, add: Report) -> None:  # noqa: PLR0912 - one check per property
    """Report each problem of `rule`, written at `path`; `at(key)` is where a key was
    written, which is under `defaults` for an inherited one."""
    if not re.match(RULE_NAME, rule.name):
        add((*path, "name"), f"rule name {rule.name!r} must match [a-z0-9_.-]+")
    for key in ("delay", "offset"):
        value = getattr(rule, key)
        if value is not None and not is_duration(value):
            add(at(key), f"{key}: {value!r} is not a duration like 30s, 10m, 2h, 1d")
    if rule.body is None:
        add(path, "rule is missing required key 'body'")
    if rule.channel != "push":
        for key in ("title", "data", "push_id"):
            if getattr(rule, key) is not None:
                add(at(key), f"{key!r} is only allowed on push rules", key=True)
    if rule.delay is not None and rule.at is not None:
        add(at("at"), "use either 'delay' or 'at', not both", key=True)
    if rule.offset is not None and rule.at is None:
        add(at("offset"), "'offset' needs 'at'", key=True)
    if rule.cancel_on and rule.delay is None and rule.at is None and not rule.quiet_hours:
        add(at("cancel_on"), "'cancel_on' needs 'delay', 'at' or 'quiet_hours'", key=True)
    _manners(rule, path, at, add)
    for key, patterns in (("on", rule.patterns()), ("cancel_on", rule.cancel_patterns())):
        for pattern in patterns:
            bad = not re.match(EVENT_PATTERN, pattern)
            if bad or pattern.count("[") != pattern.count("]") or ".." in pattern:
                add(at(key), f"bad event type pattern {pattern!r}")


def _manners(rule: Rule, path: Path, at: Where, add: Report) -> None:
    """quiet_hours, timezone, urgent and throttle."""
    if rule.quiet_hours is not None:
        if not re.match(QUIET_HOURS, rule.quiet_hours):
            add(at("quiet_hours"), f"quiet_hours: {rule.quiet_hours!r} is not a local-time "
                "window like 21:00-08:00")  # fmt: skip
        elif rule.quiet_hours[:5] == rule.quiet_hours[6:]:
            add(at("quiet_hours"), "quiet_hours: the window starts and ends at the same time")
    else:
        for key in ("timezone", "urgent"):
            if getattr(rule, key) not in (None, False):
                add(at(key), f"{key!r} needs 'quiet_hours'", key=True)
    if rule.timezone is not None and "{" not in rule.timezone:
        try:
            ZoneInfo(rule.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            add(at("timezone"), f"timezone: unknown time zone {rule.timezone!r} "
                "(use an IANA name like Europe/London)")  # fmt: skip
    throttle = rule.throttle
    if throttle is not None:
        where: Path = (*path, "throttle")
        if throttle.limit < 1:
            add((*where, "limit"), f"throttle.limit: {throttle.limit} must be 1 or more")
        if not is_duration(throttle.window) or parse_duration(throttle.window) <= timedelta(0):
            add((*where, "window"), f"throttle.window: {throttle.window!r} is not a positive "
                "duration like 30m, 2h, 1d")  # fmt: skip
