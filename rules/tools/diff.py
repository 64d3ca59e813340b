"""What changes when OLD rules are replaced by NEW, over the same events. Pure: no I/O.

A rule whose definition is the same in both files (same source, same defaults applied) makes
the same notifications from the same event, so only rules that changed, appeared or
disappeared are routed, once with each file; the rest are never evaluated.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from rules.routing import route
from rules.ruleset import CompiledRule, RuleSet
from schemas import IN_FLIGHT, Event, NewNotification

# What a notification is compared on. The idempotency key follows from the recipient, and
# `rules_version` is a hash of the whole file, so it always differs. `encoding` changes only
# with the body, and is what SMS cost most: shown on its own line.
FIELDS = ("recipient", "title", "body", "encoding", "data", "send_at", "status", "error_code")


# Notifications whose encoding changed, listed per rule (the rest are counted).
ENCODING_EXAMPLES = 20


class RuleChange(StrEnum):
    CHANGED = "changed"
    ADDED = "added"
    REMOVED = "removed"
    UNCHANGED = "unchanged"


class Kind(StrEnum):
    APPEARED = "appeared"
    DISAPPEARED = "disappeared"
    CHANGED = "changed"
    ERROR = "error"  # the rule raises while routing the event, on one side only


@dataclass(frozen=True)
class Plan:
    """Every rule name of either file with its change, and the rules worth routing."""

    changes: dict[str, RuleChange]
    old: RuleSet
    new: RuleSet
    old_all: RuleSet
    new_all: RuleSet


def plan(old: RuleSet, new: RuleSet) -> Plan:
    old_by = {r.name: r for r in old.rules}
    new_by = {r.name: r for r in new.rules}
    changes: dict[str, RuleChange] = {}
    for name, rule in old_by.items():
        if name not in new_by:
            changes[name] = RuleChange.REMOVED
        elif new_by[name].rule == rule.rule:  # msgspec structs compare field by field
            changes[name] = RuleChange.UNCHANGED
        else:
            changes[name] = RuleChange.CHANGED
    for name in new_by:
        changes.setdefault(name, RuleChange.ADDED)

    def routed(rules: RuleSet) -> RuleSet:
        keep = tuple(r for r in rules.rules if changes[r.name] is not RuleChange.UNCHANGED)
        return RuleSet(rules=keep, version=rules.version, source=rules.source)

    return Plan(changes=changes, old=routed(old), new=routed(new), old_all=old, new_all=new)


@dataclass(frozen=True)
class Difference:
    """One notification that appeared, disappeared or changed, for one event and rule."""

    kind: Kind
    rule: str
    event_id: str
    event_type: str
    old: NewNotification | None
    new: NewNotification | None
    fields: tuple[str, ...] = ()
    errors: tuple[str | None, str | None] = (None, None)  # OLD's and NEW's, for Kind.ERROR


def _values(n: NewNotification) -> tuple[Any, ...]:
    return tuple(getattr(n, f) for f in FIELDS)


def _pair(
    rule: str,
    event: Event,
    old: list[NewNotification],
    new: list[NewNotification],
    out: list[Difference],
) -> None:
    """Pair one rule's notifications for one event: same recipient first, then in order."""
    unpaired_new: list[NewNotification] = []
    by_recipient: dict[str, list[NewNotification]] = {}
    for n in old:
        by_recipient.setdefault(n.recipient, []).append(n)
    pairs: list[tuple[NewNotification, NewNotification]] = []
    for n in new:
        same = by_recipient.get(n.recipient)
        if same:
            pairs.append((same.pop(0), n))
        else:
            unpaired_new.append(n)
    unpaired_old = [n for ns in by_recipient.values() for n in ns]
    # What is left on both sides is most likely the same notification to a new recipient.
    pairs.extend(zip(unpaired_old, unpaired_new, strict=False))
    common = min(len(unpaired_old), len(unpaired_new))
    for a, b in pairs:
        va, vb = _values(a), _values(b)
        if va != vb:
            changed = tuple(f for f, x, y in zip(FIELDS, va, vb, strict=True) if x != y)
            out.append(Difference(Kind.CHANGED, rule, event.id, event.type, a, b, changed))
    for a in unpaired_old[common:]:
        out.append(Difference(Kind.DISAPPEARED, rule, event.id, event.type, a, None))
    for b in unpaired_new[common:]:
        out.append(Difference(Kind.APPEARED, rule, event.id, event.type, None, b))


@dataclass(frozen=True)
class Routing:
    """One side's routing of one event: its notifications, and the rules that raised."""

    notifications: list[NewNotification] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def route_each(
    event: Event, rules: RuleSet, *, now: datetime, default_region: str, stale_after: timedelta
) -> Routing:
    """`route`, except that a rule raising is caught and named rather than propagated."""
    kwargs: dict[str, Any] = {
        "now": now,
        "default_region": default_region,
        "stale_after": stale_after,
    }
    try:
        return Routing(route(event, rules, **kwargs).notifications)
    except Exception:  # noqa: BLE001 - some template failures escape route()
        pass
    # The consumer retries such an event and finally dead-letters it, with all its rules'
    # notifications. Routing rule by rule says which rule it was.
    routing = Routing()
    for rule in rules.rules:
        one = RuleSet(rules=(rule,), version=rules.version, source=rules.source)
        try:
            routing.notifications.extend(route(event, one, **kwargs).notifications)
        except Exception as exc:  # noqa: BLE001 - reported per rule, as the consumer would fail
            routing.errors[rule.name] = f"{type(exc).__name__}: {exc}"[:500]
    return routing


def compare(event: Event, old: Routing, new: Routing) -> list[Difference]:
    """Every difference between two routings of one event, rule by rule."""
    old_by: dict[str, list[NewNotification]] = {}
    new_by: dict[str, list[NewNotification]] = {}
    for n in old.notifications:
        old_by.setdefault(n.rule, []).append(n)
    for n in new.notifications:
        new_by.setdefault(n.rule, []).append(n)
    out: list[Difference] = []
    for rule in dict.fromkeys([*old_by, *new_by, *old.errors, *new.errors]):
        errors = (old.errors.get(rule), new.errors.get(rule))
        if errors != (None, None):
            if errors[0] != errors[1]:
                out.append(
                    Difference(Kind.ERROR, rule, event.id, event.type, None, None, errors=errors)
                )
            continue
        _pair(rule, event, old_by.get(rule, []), new_by.get(rule, []), out)
    return out


@dataclass
class RuleReport:
    rule: str
    change: RuleChange
    counts: Counter[Kind] = field(default_factory=Counter)
    examples: list[Difference] = field(default_factory=list)
    # SMS segments the rule makes over the replayed events, with each file: what it costs.
    segments_old: int = 0
    segments_new: int = 0
    # Notifications whose encoding changes (GSM-7 <-> UCS-2), all counted, the first shown.
    encoding_changes: int = 0
    encoding_examples: list[Difference] = field(default_factory=list)

    @property
    def segments_added(self) -> int:
        """Segments the change adds (negative: removes) over the replayed events."""
        return self.segments_new - self.segments_old

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class Undecodable:
    """An input the consumer would dead-letter; `where` is an entry id or FILE:LINE."""

    where: str
    reason: str
    detail: str


@dataclass
class DiffReport:
    plan: Plan
    rules: dict[str, RuleReport]
    events: int = 0
    routed: int = 0
    unmatched: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)
    dead_examples: list[Undecodable] = field(default_factory=list)

    @property
    def differences(self) -> int:
        return sum(r.total for r in self.rules.values())


@dataclass(frozen=True)
class _Routes:
    """Per event type: the rules of each side worth routing, and whether any rule listens."""

    old: RuleSet | None
    new: RuleSet | None
    listened: bool


def _matching(rules: RuleSet, event_type: str) -> tuple[CompiledRule, ...]:
    return tuple(r for r in rules.rules if r.matches(event_type))


class Differ:
    """Feed events (and dead letters) one at a time; memory stays bounded by `examples`."""

    def __init__(
        self,
        plan: Plan,
        *,
        now: datetime | None = None,
        default_region: str = "US",
        stale_after: timedelta = timedelta(hours=1),
        examples: int = 3,
    ) -> None:
        self.plan = plan
        self.now = now
        self.default_region = default_region
        self.stale_after = stale_after
        self.examples = examples
        differing = {n: c for n, c in plan.changes.items() if c is not RuleChange.UNCHANGED}
        self.report = DiffReport(plan, {n: RuleReport(n, c) for n, c in differing.items()})
        self._routes: dict[str, _Routes] = {}

    def _routes_for(self, event_type: str) -> _Routes:
        # Matching rules depend only on the type, and a day holds few types: decide once each.
        routes = self._routes.get(event_type)
        if routes is None:
            p = self.plan
            old, new = _matching(p.old, event_type), _matching(p.new, event_type)
            listened = bool(_matching(p.old_all, event_type) or _matching(p.new_all, event_type))
            routes = _Routes(
                old=RuleSet(rules=old, version=p.old.version, source=p.old.source) if old else None,
                new=RuleSet(rules=new, version=p.new.version, source=p.new.source) if new else None,
                listened=listened,
            )
            self._routes[event_type] = routes
        return routes

    def _route(self, event: Event, rules: RuleSet | None) -> Routing:
        if rules is None:
            return Routing()
        now = self.now or event.time  # one clock for both sides, so send times compare
        return route_each(
            event, rules, now=now, default_region=self.default_region, stale_after=self.stale_after
        )

    def add(self, event: Event) -> list[Difference]:
        self.report.events += 1
        routes = self._routes_for(event.type)
        if not routes.listened:
            self.report.unmatched += 1
            return []
        if routes.old is None and routes.new is None:
            return []
        self.report.routed += 1
        old, new = self._route(event, routes.old), self._route(event, routes.new)
        for side, routing in (("old", old), ("new", new)):
            for n in routing.notifications:
                if n.segments and n.status in IN_FLIGHT:  # would be sent
                    report = self.report.rules[n.rule]
                    if side == "old":
                        report.segments_old += n.segments
                    else:
                        report.segments_new += n.segments
        found = compare(event, old, new)
        for diff in found:
            rule = self.report.rules[diff.rule]
            rule.counts[diff.kind] += 1
            if len(rule.examples) < self.examples:
                rule.examples.append(diff)
            if "encoding" in diff.fields:
                rule.encoding_changes += 1
                if len(rule.encoding_examples) < ENCODING_EXAMPLES:
                    rule.encoding_examples.append(diff)
        return found

    def dead_letter(self, letter: Undecodable) -> None:
        """Counted by reason, with up to `examples` of each reason kept to show."""
        self.report.dead_letters[letter.reason] += 1
        if self.report.dead_letters[letter.reason] <= self.examples:
            self.report.dead_examples.append(letter)


_TOKENS = re.compile(r"\s+|\S+")


def _split_tail(left: str, right: str) -> tuple[str, str, str]:
    """Whitespace that every side of an edit ends with reads better as context after it."""
    texts = [t for t in (left, right) if t]
    tails = {t[len(t.rstrip()) :] for t in texts}
    tail = tails.pop() if len(tails) == 1 else ""
    if not tail or any(t.isspace() for t in texts):
        return left, right, ""
    return left.removesuffix(tail), right.removesuffix(tail), tail


def word_diff(old: str, new: str) -> str:
    """`[-removed words-]{+added words+}`, as `git diff --word-diff=plain` writes it."""
    a, b = _TOKENS.findall(old), _TOKENS.findall(new)
    parts: list[tuple[bool, str, str]] = []  # (is an edit, old text, new text)
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        edit, left, right = tag != "equal", "".join(a[i1:i2]), "".join(b[j1:j2])
        # Fold a lone space between two edits into one, so "45 min" -> "1 h" reads as one edit.
        if edit and len(parts) >= 2 and parts[-2][0] and parts[-1][1].isspace():
            _, space, _ = parts.pop()
            _, pl, pr = parts.pop()
            left, right = pl + space + left, pr + space + right
        parts.append((edit, left, right))
    out = []
    for edit, before, after in parts:
        if not edit:
            out.append(before)
            continue
        left, right, tail = _split_tail(before, after)
        out.append(f"[-{left}-]" if left else "")
        out.append(f"{{+{right}+}}" if right else "")
        out.append(tail)
    return "".join(out)
