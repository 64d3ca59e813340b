"""The console's answers as terminal text (`notify find`, `notify show`)."""

from __future__ import annotations

from typing import Any

from notify.dead_letters import shorten


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'ID':<10} {'CREATED':<26} {'RULE':<20} {'CHANNEL':<8} {'RECIPIENT':<20} "
        f"{'STATUS':<12} {'ERROR':<18} SUBJECT"
    ]
    for r in rows:
        lines.append(
            f"{r['id']:<10} {r['created_at'][:25]:<26} {shorten(r['rule'], 20):<20} "
            f"{r['channel']:<8} {shorten(r['recipient'], 20, middle=True):<20} "
            f"{r['status']:<12} {shorten(r['error_code'] or '', 18):<18} "
            f"{shorten(r['subject'], 40)}"
        )
    lines.append(f"{len(rows)} notification(s)")
    return "\n".join(lines)


def notification(n: dict[str, Any]) -> str:
    lines = [
        f"notification {n['id']}: {n['status']}",
        "",
        n["explanation"],
        "",
        f"  recipient  {n['recipient']} ({n['channel']})",
        f"  rule       {n['rule']} (rules version {n['rules_version'] or 'unknown'})",
        f"  event      {n['event_id']} ({n['event_type']}) subject {n['subject'] or '-'}",
    ]
    if n.get("sms"):
        sms = n["sms"]
        lines.append(f"  sms        {sms['encoding']}, {sms['segments']} segment(s)")
    lines += ["", "timeline:"]
    lines += [f"  {t['at']}  {t['what']:<18} {shorten(t['detail'], 200)}" for t in n["timeline"]]
    return "\n".join(lines)


def event(e: dict[str, Any]) -> str:
    lines = [f"event {shorten(e['event_id'], 200)}", "", e["explanation"], ""]
    if e["notifications"]:
        lines.append(table(e["notifications"]))
    if e["cancelled"]:
        lines += ["", "cancelled:", table(e["cancelled"])]
    return "\n".join(lines)
