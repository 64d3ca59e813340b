"""A notification's story, from its event to its last receipt. Pure: rows in, entries out.

Every entry is built from what the tables recorded (the row, its attempts, its receipts,
the recipient's suppression history); nothing is guessed except where a scheduled row's
hold is told apart from a plain delay, which needs the rule (given when known).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from console.queries import Detail, Row
from schemas import TERMINAL, Status

Shown = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class Entry:
    at: datetime
    what: str
    detail: str

    def as_json(self) -> dict[str, str]:
        return {"at": self.at.isoformat(), "what": self.what, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class RuleFacts:
    """What the current rules say of the row's rule, when its version is still in force."""

    delay: timedelta | None
    quiet_hours: str | None
    throttle: str | None


def _codes(row: Row) -> str:
    parts = []
    if row.get("provider"):
        parts.append(f"via {row['provider']}")
    if row.get("error_code"):
        parts.append(f"error {row['error_code']}")
    if row.get("error_message"):
        parts.append(str(row["error_message"]))
    if row.get("provider_message_id"):
        parts.append(f"message id {row['provider_message_id']}")
    return "; ".join(parts)


def _routed(n: Row, shown: Shown) -> Entry:
    version = n.get("rules_version") or "unknown"
    return Entry(
        n["created_at"],
        "routed",
        f"rule {n['rule']} (rules version {version}) made this {n['channel']} notification to "
        f"{shown(n['recipient'])}",
    )


def _decided(n: Row, rule: RuleFacts | None) -> list[Entry]:
    """What routing and the insert decided: a hold, a skip, or a failure before any send."""
    at, code = n["created_at"], n.get("error_code")
    out: list[Entry] = []
    if n.get("send_at") is not None and (
        n["status"] == Status.SCHEDULED or n.get("cancelled_by") or n["send_at"] > at
    ):
        due = n["send_at"].isoformat()
        event_time = n.get("event_time")
        planned = event_time + rule.delay if rule and rule.delay and event_time else None
        if rule and rule.quiet_hours and planned != n["send_at"]:
            out.append(
                Entry(at, "quiet hours", f"held until {due}: quiet hours {rule.quiet_hours}")
            )
        else:
            out.append(Entry(at, "scheduled", f"due at {due}"))
    if n["status"] == Status.SKIPPED and code == "throttled":
        limit = f" ({rule.throttle})" if rule and rule.throttle else ""
        out.append(Entry(at, "throttled", f"over the rule's throttle{limit}; not sent"))
    elif n["status"] == Status.SKIPPED and code == "suppressed":
        out.append(Entry(at, "suppressed", str(n.get("error_message") or "recipient suppressed")))
    elif n["attempts"] == 0 and n["status"] == Status.FAILED:
        out.append(Entry(at, "failed", _codes(n) or "failed before sending"))
    return out


def _attempt(a: Row) -> Entry:
    detail = [str(a["outcome"])]
    if a.get("provider"):
        detail.append(f"via {a['provider']}")
    if a.get("error_code"):
        detail.append(f"error {a['error_code']}")
    if a.get("error_message"):
        detail.append(str(a["error_message"]))
    if a.get("provider_message_id"):
        detail.append(f"message id {a['provider_message_id']}")
    if a.get("finished_at"):
        took = (a["finished_at"] - a["started_at"]).total_seconds()
        detail.append(f"{took * 1000:.0f} ms")
    return Entry(a["started_at"], f"attempt {a['attempt']}", "; ".join(detail))


def _receipt(r: Row) -> Entry:
    detail = f"{r['provider_status']} ({r['source']})"
    if r.get("error_code"):
        detail += f"; error {r['error_code']}"
    return Entry(r["received_at"], "receipt", detail)


def _suppression_changes(d: Detail, shown: Shown) -> list[Entry]:
    """The recipient's suppression changes while this row was live, and for a suppressed
    row the one that suppressed it."""
    n = d.notification
    relevant = [h for h in d.suppression_history if n["created_at"] < h["at"] <= n["updated_at"]]
    if n.get("error_code") == "suppressed":
        before = [h for h in d.suppression_history if h["at"] <= n["created_at"]]
        relevant = [h for h in before[-1:] if h["action"] == "added"] + relevant
    return [
        Entry(
            h["at"],
            "suppression " + ("added" if h["action"] == "added" else "lifted"),
            f"{shown(h['recipient'])}: {h['reason']} (source {h['source']})",
        )
        for h in relevant
    ]


def _ending(n: Row) -> list[Entry]:
    status, at = Status(n["status"]), n["updated_at"]
    out = []
    if status is Status.CANCELLED:
        by = n.get("cancelled_by")
        out.append(Entry(at, "cancelled", f"by event {by}" if by else "cancelled"))
    if status in TERMINAL:
        out.append(
            Entry(
                at,
                "outcome",
                f"notification.{status.value} (outcomes stream id {n['id']}-{status.value})",
            )
        )
    return out


def build(d: Detail, shown: Shown, rule: RuleFacts | None = None) -> list[Entry]:
    n = d.notification
    entries: list[Entry] = []
    if n.get("event_time") is not None:
        subject = f", subject {n['event_subject']}" if n.get("event_subject") else ""
        entries.append(
            Entry(n["event_time"], "event", f"{n['event_type']} {n['event_id']}{subject}")
        )
    entries += _suppression_changes(d, shown)
    entries.append(_routed(n, shown))
    entries += _decided(n, rule)
    entries += [_attempt(a) for a in d.attempts]
    entries += [_receipt(r) for r in d.receipts]
    entries += _ending(n)
    # Stable: entries at one instant keep the order they happen in.
    return sorted(entries, key=lambda e: e.at)


def as_json(entries: list[Entry]) -> list[dict[str, Any]]:
    return [e.as_json() for e in entries]
