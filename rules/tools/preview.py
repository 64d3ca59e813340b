"""`notify rules preview`: what one event would produce, rendered, before a rules file ships."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from notify import database, segments, suppressions
from notify.settings import Settings
from rules.routing import explain, route
from rules.ruleset import RuleSet
from schemas import Channel, EventError, NewNotification
from schemas.decoding import decode_entry


def _event_fields(args: argparse.Namespace) -> dict[bytes, bytes]:
    if args.event:
        with open(args.event, encoding="utf-8") as handle:
            doc = json.load(handle)
    else:
        if not args.event_type:
            raise ValueError("give --event FILE, or --type with --data")
        doc = {"type": args.event_type, "data": json.loads(args.data or "{}")}
    if args.subject:
        doc["subject"] = args.subject
    return event_fields(doc)


def event_fields(doc: dict[str, Any]) -> dict[bytes, bytes]:
    """An event as a person writes it (`data` an object) as the stream entry it would be."""
    doc.setdefault("id", "preview")
    fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in doc.items()}
    return {k.encode(): v.encode() for k, v in fields.items()}


def describe(n: NewNotification) -> dict[str, Any]:
    item: dict[str, Any] = {
        "rule": n.rule, "channel": n.channel.value, "recipient": n.recipient,
        "status": n.status.value, "title": n.title, "body": n.body, "data": n.data,
        "push_id": None if n.push_id is None else n.push_id.value,
        "send_at": n.send_at.isoformat() if n.send_at else None,
        "error_code": n.error_code, "error_message": n.error_message, "problems": [],
    }  # fmt: skip
    if n.quiet_zone and n.send_at:
        local = n.send_at.astimezone(ZoneInfo(n.quiet_zone))
        item["quiet_hours"] = {"zone": n.quiet_zone, "until": local.isoformat(),
                               "note": f"would be scheduled for {local:%H:%M} {n.quiet_zone} "
                                       "(quiet hours)"}  # fmt: skip
    if n.throttle:
        item["throttle"] = {"key": n.throttle.key, "limit": n.throttle.limit,
                            "window_seconds": n.throttle.window_seconds}  # fmt: skip
    if n.channel.value == "sms" and n.error_code is None:
        seg = segments.count(n.body)
        item["sms"] = {"encoding": seg.encoding, "characters": seg.characters,
                       "segments": seg.segments, "country": n.country,
                       "not_gsm": segments.non_gsm(n.body)}  # fmt: skip
        if seg.too_long:
            item["problems"].append(
                f"body is {seg.characters} characters; SMS allows {segments.MAX_CHARACTERS}"
            )
        elif seg.segments > 1:
            item["warnings"] = [f"{seg.segments} segments: billed as {seg.segments} messages"]
        if seg.encoding == segments.UCS_2:
            culprits = segments.named(segments.non_gsm(n.body))
            item.setdefault("warnings", []).append(
                f"UCS-2 (70 characters a segment, not 160) because of {culprits}"
            )
    return item


def _seconds(value: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if value >= size and value % size == 0:
            return f"{int(value // size)}{unit}"
    return f"{value:g}s"


def _print(item: dict[str, Any]) -> None:
    print(f"\n[{item['rule']}] {item['channel']} -> {item['recipient'] or '(none)'}"
          f"  status={item['status']}")  # fmt: skip
    if item["send_at"]:
        print(f"  send at: {item['send_at']}")
    if "quiet_hours" in item:
        print(f"  {item['quiet_hours']['note']}")
    if "suppressed" in item:
        print(f"  {item['suppressed']['note']}")
    if "throttle" in item:
        throttle = item["throttle"]
        print(f"  throttle: at most {throttle['limit']} per "
              f"{_seconds(throttle['window_seconds'])} for key {throttle['key']!r} and "
              "this recipient (counted when the row is stored)")  # fmt: skip
    if item["push_id"]:
        print(f"  push_id: {item['push_id']} (sent as FCM's message.{item['push_id']})")
    if item["title"]:
        print(f"  title: {item['title']}")
    print(f"  body: {item['body']}")
    if item["data"]:
        print(f"  data: {json.dumps(item['data'])}")
    if "sms" in item:
        sms = item["sms"]
        print(f"  sms: {sms['encoding']}, {sms['characters']} characters, "
              f"{sms['segments']} segment{'s' if sms['segments'] != 1 else ''}")  # fmt: skip
    for warning in item.get("warnings", []):
        print(f"  WARNING: {warning}")
    for problem in item["problems"]:
        print(f"  ERROR: {problem}")
    if item["error_code"]:
        print(f"  ERROR {item['error_code']}: {item['error_message']}")


def _mark_suppressed(
    items: list[dict[str, Any]], notifications: list[NewNotification], settings: Settings
) -> None:
    """What the store would do to each: a suppressed recipient's row is stored `skipped`."""
    wanted = [(n.channel, n.recipient) for n in notifications]
    found = asyncio.run(_suppressions(settings, wanted))
    for item, n in zip(items, notifications, strict=True):
        reason = found.get((n.channel.value, n.recipient))
        if reason is not None and item["status"] in ("pending", "scheduled"):
            item["suppressed"] = {
                "reason": reason,
                "note": f"would be stored skipped / suppressed ({reason}); no provider call",
            }


async def _suppressions(
    settings: Settings, wanted: list[tuple[Channel, str]]
) -> dict[tuple[str, str], str]:
    conn = await database.connect(settings.database_url, settings.statement_cache_size)
    try:
        return await suppressions.reasons_for(conn, wanted)
    finally:
        await conn.close()


def preview(rules: RuleSet, args: argparse.Namespace, settings: Settings) -> int:
    try:
        millis = int(datetime.now(UTC).timestamp() * 1000)
        event = decode_entry(f"{millis}-0", _event_fields(args), settings.max_event_bytes)
    except (OSError, ValueError, EventError) as exc:
        print(f"notify rules preview: bad event: {exc}", file=sys.stderr)
        return 2
    # "now" is the event time, so a delay shows as scheduled rather than already due.
    routed = route(event, rules, now=event.time - timedelta(seconds=1),
                   default_region=settings.default_region,
                   default_timezone=settings.default_timezone,
                   sms_countries=settings.sms_countries)  # fmt: skip
    items = [describe(n) for n in routed.notifications]
    if args.suppressions:
        _mark_suppressed(items, routed.notifications, settings)
    skipped = [{"rule": name, "reason": why} for name, why in explain(event, rules, routed)]
    failed = any(i["problems"] or i["error_code"] for i in items)
    if args.json:
        print(json.dumps({"event": event.id, "type": event.type, "rules_version": rules.version,
                          "notifications": items, "not_matched": skipped}, indent=2))  # fmt: skip
        return 1 if failed else 0
    print(f"event {event.id} type {event.type} (rules version {rules.version})")
    for item in items:
        _print(item)
    for skip in skipped:
        print(f"\n[{skip['rule']}] not matched: {skip['reason']}")
    return 1 if failed else 0
