"""Why an event produced what it did, or nothing ("Why not?"). Pure.

The event's notifications tell most of it; the decision record (consumer/decisions.py)
tells the rest: that no rule listened for its type, or which rule's condition was false.
A rule's condition is quoted from the current rules only when their version is the one
that decided: rules files are not kept by version.
"""

from __future__ import annotations

from collections.abc import Sequence

from console.queries import Row
from console.timeline import RuleFacts
from rules.ruleset import CompiledRule, RuleSet


def _rule(rules: RuleSet | None, name: str, version: str | None) -> CompiledRule | None:
    if rules is None or version != rules.version:
        return None
    return next((r for r in rules.rules if r.name == name), None)


def rule_facts(rules: RuleSet | None, row: Row) -> RuleFacts | None:
    """The row's rule as the rules in force say, if they are the version that routed it."""
    rule = _rule(rules, row["rule"], row.get("rules_version"))
    if rule is None:
        return None
    throttle = rule.rule.throttle
    return RuleFacts(
        delay=rule.delay,
        quiet_hours=rule.rule.quiet_hours if not rule.rule.urgent else None,
        throttle=None if throttle is None else f"{throttle.limit} per {throttle.window}",
    )


def event_lines(
    event_id: str, decisions: Sequence[Row], notifications: Sequence[Row], cancelled: int,
    rules: RuleSet | None,
) -> list[str]:  # fmt: skip
    """Plain sentences: what the event made, and why each other rule made nothing."""
    lines: list[str] = []
    if notifications:
        by_rule: dict[str, int] = {}
        for n in notifications:
            by_rule[n["rule"]] = by_rule.get(n["rule"], 0) + 1
        made = ", ".join(f"{count} by {rule}" for rule, count in sorted(by_rule.items()))
        lines.append(f"Event {event_id} made {len(notifications)} notification(s): {made}.")
    if cancelled:
        lines.append(f"It cancelled {cancelled} scheduled reminder(s) of its subject.")
    if not decisions:
        if not notifications and not cancelled:
            lines.append(
                f"Nothing is recorded for event {event_id}: it has not been handled yet, it "
                "was dead-lettered (see Operations), or its record has expired."
            )
        return lines
    last = decisions[-1]
    version = last["rules_version"]
    if not last["matched"]:
        lines.append(
            f"No rule listens for events of type {last['event_type']} (rules version "
            f"{version}), so it made nothing. A new rule is needed if it should."
        )
    notified = set(last["notified"])
    for name in last["matched"]:
        if name in notified:
            continue
        rule = _rule(rules, name, version)
        condition = f" ({rule.rule.when})" if rule is not None and rule.rule.when else ""
        lines.append(
            f"Rule {name} listened but its condition{condition} was false for this event "
            f"(rules version {version}), so it made nothing."
        )
    return lines
