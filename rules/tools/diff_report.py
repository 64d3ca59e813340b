"""`notify rules diff` output: a readable report, or JSON for CI to post on a pull request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from notify import segments
from notify.logs import mask
from rules.tools.diff import Difference, DiffReport, Kind, RuleChange, RuleReport, word_diff
from schemas import NewNotification

Recipient = Callable[[str], str]
_SIGN = {Kind.APPEARED: "+", Kind.DISAPPEARED: "-", Kind.CHANGED: "~", Kind.ERROR: "!"}


def recipient_shown(full: bool) -> Recipient:
    """Recipients are masked unless asked for: this output ends up in pull requests."""
    return (lambda r: r) if full else (lambda r: mask(r) if r else r)


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _notification(n: NewNotification, shown: Recipient) -> dict[str, Any]:
    return {
        "channel": n.channel.value,
        "recipient": shown(n.recipient),
        "title": n.title,
        "body": n.body,
        "data": n.data,
        "status": n.status.value,
        "send_at": n.send_at.isoformat() if n.send_at else None,
        "error_code": n.error_code,
        "error_message": n.error_message,
    }


def encoding_change(d: Difference) -> dict[str, Any]:
    """GSM-7 -> UCS-2 (or back), and the characters that made the UCS-2 side UCS-2."""
    assert d.old is not None and d.new is not None
    ucs2 = d.new if d.new.encoding == segments.UCS_2 else d.old
    return {
        "from": d.old.encoding, "to": d.new.encoding,
        "segments": {"old": d.old.segments, "new": d.new.segments},
        "characters": segments.non_gsm(ucs2.body),
    }  # fmt: skip


def _example(d: Difference, shown: Recipient) -> dict[str, Any]:
    item: dict[str, Any] = {
        "kind": d.kind.value,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "changed": list(d.fields),
        "old": _notification(d.old, shown) if d.old else None,
        "new": _notification(d.new, shown) if d.new else None,
    }
    if d.old and d.new and "body" in d.fields:
        item["body_diff"] = word_diff(d.old.body, d.new.body)
    if "encoding" in d.fields:
        item["encoding_change"] = encoding_change(d)
    if d.kind is Kind.ERROR:
        item["errors"] = {"old": d.errors[0], "new": d.errors[1]}
    return item


def as_json(report: DiffReport, source: dict[str, Any], shown: Recipient) -> dict[str, Any]:
    plan = report.plan
    by_change: dict[str, list[str]] = {c.value: [] for c in RuleChange}
    for name, change in plan.changes.items():
        by_change[change.value].append(name)
    return {
        "old": {"file": plan.old_all.source, "version": plan.old_all.version},
        "new": {"file": plan.new_all.source, "version": plan.new_all.version},
        "source": source,
        "events": {
            "read": report.events,
            "routed": report.routed,
            "unmatched": report.unmatched,
            "dead_letters": sum(report.dead_letters.values()),
        },
        "rules": by_change,
        "differences": report.differences,
        "by_rule": [
            {
                "rule": r.rule,
                "change": r.change.value,
                **{k.value: r.counts[k] for k in Kind},
                "segments": {
                    "old": r.segments_old,
                    "new": r.segments_new,
                    "added": r.segments_added,
                },
                "encoding_changes": r.encoding_changes,
                "encoding_examples": [
                    {
                        "event_id": d.event_id,
                        "recipient": shown(d.new.recipient if d.new else ""),
                        **encoding_change(d),
                    }
                    for d in r.encoding_examples
                ],
                "examples": [_example(d, shown) for d in r.examples],
            }
            for r in report.rules.values()
        ],
        "dead_letters": {
            "by_reason": dict(report.dead_letters.most_common()),
            "examples": [vars(d) for d in report.dead_examples],
        },
    }


def _describe(n: NewNotification, shown: Recipient) -> str:
    text = f"{n.channel.value} {shown(n.recipient) or '(no recipient)'} [{n.status.value}"
    if n.error_code:
        text += f" {n.error_code}"
    return text + (f", send at {n.send_at.isoformat()}]" if n.send_at else "]")


def _changed_lines(d: Difference, shown: Recipient) -> list[str]:
    assert d.old is not None and d.new is not None  # a change has both sides
    old, new, lines = d.old, d.new, []
    for name in d.fields:
        if name in ("body", "title"):
            lines.append(f"{name}: {word_diff(getattr(old, name) or '', getattr(new, name) or '')}")
        elif name == "recipient":
            lines.append(f"recipient: {shown(old.recipient)} -> {shown(new.recipient)}")
        elif name == "send_at":
            before, after = (t.isoformat() if t else "now" for t in (old.send_at, new.send_at))
            lines.append(f"send at: {before} -> {after}")
        elif name == "encoding":
            change = encoding_change(d)
            lines.append(
                f"encoding: {old.encoding} -> {new.encoding}, {old.segments} -> {new.segments} "
                f"segments, because of {segments.named(change['characters'])}"
            )
        elif name == "error_code":
            lines.append(
                f"error: {old.error_code or '-'} -> {new.error_code or '-'}"
                + (f" ({new.error_message})" if new.error_message else "")
            )
        else:
            lines.append(f"{name}: {getattr(old, name)} -> {getattr(new, name)}")
    return lines


def _example_lines(d: Difference, shown: Recipient) -> list[str]:
    head = f"  {_SIGN[d.kind]} event {d.event_id} ({d.event_type})"
    if d.kind is Kind.ERROR:
        return [
            f"{head} raises while routing; the consumer retries such an event, then "
            "dead-letters it with all its notifications",
            *(
                f"      {side}: {error or 'no error'}"
                for side, error in zip(("OLD", "NEW"), d.errors, strict=True)
            ),
        ]
    n = d.new or d.old
    assert n is not None  # every other kind has a notification on at least one side
    head += f" {_describe(n, shown)}"
    if d.kind is Kind.CHANGED:
        return [head, *(f"      {line}" for line in _changed_lines(d, shown))]
    lines = [head]
    if n.title:
        lines.append(f"      title: {n.title}")
    lines.append(f"      body: {n.body}")
    if n.error_message:
        lines.append(f"      error: {n.error_message}")
    return lines


def _signed(n: int) -> str:
    return f"{n:+,}" if n else "0"


def _rule_table(rules: list[RuleReport]) -> list[str]:
    kinds = (f"{k.value}{'s' if k is Kind.ERROR else ''}" for k in Kind)
    header = ("rule", "change", *kinds, "segments")
    rows = [header] + [
        (r.rule, r.change.value, *(f"{r.counts[k]:,}" for k in Kind), _signed(r.segments_added))
        for r in rules
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return [
        "  "
        + "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]


def _cost_lines(rule: RuleReport, shown: Recipient) -> list[str]:
    """What the change costs: segments over the replayed events, and encoding switches."""
    lines = []
    if rule.segments_added:
        lines.append(
            f"  segments: {rule.segments_old:,} -> {rule.segments_new:,} "
            f"({_signed(rule.segments_added)}) over these events"
        )
    if rule.encoding_changes:
        lines.append(f"  encoding changes: {_plural(rule.encoding_changes, 'notification')}")
        for d in rule.encoding_examples:
            assert d.old is not None and d.new is not None
            change = encoding_change(d)
            lines.append(
                f"    event {d.event_id} {shown(d.new.recipient)}: {change['from']} -> "
                f"{change['to']} ({d.old.segments} -> {d.new.segments} segments), because of "
                f"{segments.named(change['characters'])}"
            )
        if rule.encoding_changes > len(rule.encoding_examples):
            lines.append(
                f"    ... and {rule.encoding_changes - len(rule.encoding_examples):,} more"
            )
    return lines


def as_text(report: DiffReport, source: str, shown: Recipient) -> str:
    plan, out = report.plan, []
    out.append(
        f"OLD {plan.old_all.source} (version {plan.old_all.version}) -> "
        f"NEW {plan.new_all.source} (version {plan.new_all.version})"
    )
    counts = {c: sum(1 for v in plan.changes.values() if v is c) for c in RuleChange}
    out.append("rules: " + ", ".join(f"{counts[c]} {c.value}" for c in RuleChange))
    dead = sum(report.dead_letters.values())
    out.append(
        f"events: {_plural(report.events, 'event')} from {source}; "
        f"{report.routed:,} routed through the rules that differ, "
        f"{report.unmatched:,} of types no rule in either file listens to, "
        f"{_plural(dead, 'dead letter')}"
    )
    rules = list(report.rules.values())
    if rules:
        out += ["", *_rule_table(rules)]
    for rule in rules:
        if not rule.total:
            continue
        counts_text = ", ".join(f"{rule.counts[k]:,} {k.value}" for k in Kind if rule.counts[k])
        out += ["", f"{rule.rule} ({rule.change.value}): {counts_text}"]
        for example in rule.examples:
            out += _example_lines(example, shown)
        if rule.total > len(rule.examples):
            out.append(f"  ... and {rule.total - len(rule.examples):,} more")
        out += _cost_lines(rule, shown)
    if dead:
        reasons = ", ".join(f"{r} {n:,}" for r, n in report.dead_letters.most_common())
        out += ["", f"dead letters (the consumer would dead-letter these): {reasons}"]
        out += [f"  {d.where}: {d.reason}: {d.detail}" for d in report.dead_examples]
        if dead > len(report.dead_examples):
            out.append(f"  ... and {dead - len(report.dead_examples):,} more")
    differing = sum(1 for r in rules if r.total)
    out.append("")
    if report.differences:
        out.append(
            f"{_plural(report.differences, 'notification')} differ, in {_plural(differing, 'rule')}"
        )
    else:
        out.append("no differences")
    return "\n".join(out)
