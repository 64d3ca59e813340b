"""What the API answers and the pages show, built once for both, masked by role."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from console import explain, timeline
from console.queries import Detail, Row
from console.users import Role
from notify import segments
from notify.logs import mask, scrub

Shown = Callable[[str], str]

# CONTRACT section 12's fields of a notification in a list.
LIST_FIELDS = (
    "id", "event_id", "event_type", "subject", "rule", "channel", "recipient", "status",
    "error_code", "created_at", "updated_at",
)  # fmt: skip
# Columns other work adds (a second provider, SMS cost): shown when the schema has them.
OPTIONAL_FIELDS = ("provider", "segments", "encoding", "price", "price_unit")
DETAIL_FIELDS = (
    "body", "title", "error_message", "provider_message_id", "attempts", "send_at",
    "rules_version", "event_time", "cancelled_by", "cancel_on",
)  # fmt: skip


def shown_for(role: Role) -> Shown:
    """A viewer sees recipients as the logs do; support and above in full (audited)."""
    return (lambda r: r) if role >= Role.SUPPORT else (lambda r: mask(r) if r else r)


def text_for(role: Role) -> Callable[[str], str]:
    """Free text that may hold a number (dead letters, inbound bodies) for this role."""
    return (lambda t: t) if role >= Role.SUPPORT else scrub


def plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def notification(row: Row, shown: Shown) -> dict[str, Any]:
    item = {
        "id": row["id"],
        "event_id": row["event_id"],
        "event_type": row["event_type"],
        "subject": row.get("event_subject"),
        "rule": row["rule"],
        "channel": row["channel"],
        "recipient": shown(row["recipient"]),
        "status": row["status"],
        "error_code": row.get("error_code"),
        "created_at": plain(row["created_at"]),
        "updated_at": plain(row["updated_at"]),
    }
    item.update({k: plain(row[k]) for k in OPTIONAL_FIELDS if k in row})
    return item


def sms_facts(row: Row) -> dict[str, Any] | None:
    """Segments and encoding of an SMS body: the stored ones when the schema has them."""
    if row["channel"] != "sms":
        return None
    counted = segments.count(row["body"] or "")
    return {
        "segments": row.get("segments") or counted.segments,
        "encoding": row.get("encoding") or counted.encoding,
        "characters": counted.characters,
    }


def detail(d: Detail, shown: Shown, rule: timeline.RuleFacts | None) -> dict[str, Any]:
    n = d.notification
    item = notification(n, shown)
    item.update({k: plain(n.get(k)) for k in DETAIL_FIELDS})
    item["sms"] = sms_facts(n)
    item["timeline"] = timeline.as_json(timeline.build(d, shown, rule))
    item["explanation"] = explain.explain(d, shown)
    return item


def suppression(row: Row | None, shown: Shown) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "channel": row["channel"],
        "recipient": shown(row["recipient"]),
        "reason": row["reason"],
        "source": row["source"],
        "created_at": plain(row["created_at"]),
        "flag": row.get("flag"),
    }


def suppression_event(row: Row, shown: Shown) -> dict[str, Any]:
    return {
        "action": row["action"],
        "channel": row["channel"],
        "recipient": shown(row["recipient"]),
        "reason": row["reason"],
        "source": row["source"],
        "at": plain(row["at"]),
    }


def inbound(row: Row, shown: Shown, text: Callable[[str], str]) -> dict[str, Any]:
    return {
        "message_sid": row["message_sid"],
        "from": shown(row["from_number"]),
        "body": text(row["body"]),
        "opt_out_type": row.get("opt_out_type"),
        "received_at": plain(row["received_at"]),
    }


def decision(row: Row) -> dict[str, Any]:
    matched, notified = list(row["matched"]), set(row["notified"])
    return {
        "event_id": row["event_id"],
        "event_type": row["event_type"],
        "subject": row.get("event_subject"),
        "event_time": plain(row["event_time"]),
        "rules_version": row["rules_version"],
        "decided_at": plain(row["decided_at"]),
        "rules": [
            {"rule": r, "decision": "notified" if r in notified else "condition_false"}
            for r in matched
        ],
    }
