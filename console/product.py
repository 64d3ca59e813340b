"""The product staff's pages: the rules in force with their version, a preview of what a
pasted event produces, and an uploaded rules file diffed against the last 24 h of traffic,
as `notify rules preview` and `notify rules diff` do (the same code, rules.tools)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from console.app import Caller, Console
from console.users import Role
from notify.logs import mask
from notify.redis_clients import sync_client
from notify.settings import Settings
from rules.routing import explain, route
from rules.ruleset import RuleSet, load_file, load_text
from rules.tools import diff as rules_diff
from rules.tools import diff_events, diff_report
from rules.tools.preview import describe, event_fields
from schemas import Event, EventError, RulesError
from schemas.decoding import decode_entry

# An uploaded rules file larger than this is not a rules file.
MAX_UPLOAD_BYTES = 1 << 20
EXAMPLE_EVENT = json.dumps(
    {
        "type": "shipment.delayed",
        "subject": "SHP-1",
        "data": {
            "shipment_id": "SHP-1",
            "delay_minutes": 45,
            "customer": {"name": "Ann", "phone": "+14155550100", "push_tokens": ["tok-1"]},
        },
    },
    indent=2,
)


def _rules(settings: Settings) -> tuple[RuleSet | None, list[str]]:
    try:
        return load_file(settings.rules_path), []
    except RulesError as exc:
        return None, exc.problems
    except OSError as exc:
        return None, [f"{settings.rules_path}: {exc}"]


def _summary(rules: RuleSet) -> list[dict[str, Any]]:
    return [
        {
            "name": r.name,
            "on": r.rule.on,
            "channel": r.channel.value,
            "when": r.rule.when,
            "delay": r.rule.delay,
            "quiet_hours": r.rule.quiet_hours,
            "enabled": r.rule.enabled,
            "cancel_on": r.rule.cancel_on,
        }
        for r in rules.rules
    ]


def preview(rules: RuleSet, text: str, settings: Settings) -> dict[str, Any]:
    """What `text` (an event as JSON) produces under `rules`, or the problem with it."""
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError("an event is a JSON object")
        millis = int(datetime.now(UTC).timestamp() * 1000)
        event = decode_entry(f"{millis}-0", event_fields(doc), settings.max_event_bytes)
    except (ValueError, EventError) as exc:
        return {"error": f"not an event: {exc}"}
    routed = route(
        event,
        rules,
        now=event.time - timedelta(seconds=1),
        default_region=settings.default_region,
        default_timezone=settings.default_timezone,
        sms_countries=settings.sms_countries,
    )
    return {
        "event": event.id,
        "type": event.type,
        "notifications": [describe(n) for n in routed.notifications],
        "not_matched": [
            {"rule": name, "reason": why} for name, why in explain(event, rules, routed)
        ],
    }


def diff(old: RuleSet, new: RuleSet, settings: Settings, full: bool) -> tuple[str, int]:
    """`notify rules diff` over the stream's last 24 h: the report and its count."""
    differ = rules_diff.Differ(
        rules_diff.plan(old, new),
        default_region=settings.default_region,
        stale_after=timedelta(seconds=settings.stale_after_seconds),
    )
    client = sync_client(settings)
    now = datetime.now(UTC)
    try:
        for item in diff_events.stream_window(
            client,
            settings.stream,
            since=timedelta(hours=24),
            now=now,
            max_bytes=settings.max_event_bytes,
        ):
            if isinstance(item, Event):
                differ.add(item)
            else:
                differ.dead_letter(item)
    finally:
        client.close()
    label = f"stream {settings.stream!r} since {(now - timedelta(hours=24)).isoformat()}"
    shown = diff_report.recipient_shown(full)
    return diff_report.as_text(differ.report, label, shown), differ.report.differences


def routes(console: Console) -> list[BaseRoute]:
    settings = console.settings

    def page(request: Request, caller: Caller, **extra: Any) -> Response:
        rules, problems = _rules(settings)
        context = {
            "rules": rules,
            "summary": _summary(rules) if rules else [],
            "problems": problems,
            "path": settings.rules_path,
            "source": _source(settings.rules_path),
            "event_text": EXAMPLE_EVENT,
            "preview": None,
            "report": None,
            **extra,
        }
        return console.render(request, caller, "rules.html", context)

    async def show(request: Request, caller: Caller) -> Response:
        return page(request, caller)

    async def do_preview(request: Request, caller: Caller) -> Response:
        form = await request.form()
        text = str(form.get("event") or "")
        rules, _ = _rules(settings)
        result: dict[str, Any] = (
            preview(rules, text, settings) if rules else {"error": "no rules in force"}
        )
        if caller.user.role < Role.SUPPORT:
            for item in result.get("notifications", []):
                item["recipient"] = mask(item["recipient"]) if item["recipient"] else ""
        return page(request, caller, preview=result, event_text=text)

    async def do_diff(request: Request, caller: Caller) -> Response:
        form = await request.form()
        upload = form.get("rules")
        if not isinstance(upload, UploadFile):
            return page(request, caller, report={"error": "choose a rules file to upload"})
        raw = await upload.read(MAX_UPLOAD_BYTES + 1)
        current, _ = _rules(settings)
        try:
            if len(raw) > MAX_UPLOAD_BYTES:
                raise RulesError([f"{upload.filename}: larger than {MAX_UPLOAD_BYTES} bytes"])
            new = load_text(raw.decode("utf-8"), upload.filename or "uploaded.yaml")
        except (RulesError, UnicodeDecodeError) as exc:
            problems = exc.problems if isinstance(exc, RulesError) else [str(exc)]
            return page(request, caller, report={"error": "\n".join(problems)})
        if current is None:
            return page(request, caller, report={"error": "the rules in force do not load"})
        text, count = await run_in_threadpool(diff, current, new, settings, False)
        return page(
            request, caller, report={"text": text, "differences": count, "file": upload.filename}
        )

    viewer = Role.VIEWER
    return [
        Route("/rules", console.page(viewer, show), methods=["GET"]),
        Route("/rules/preview", console.page(viewer, do_preview), methods=["POST"]),
        Route("/rules/diff", console.page(viewer, do_diff), methods=["POST"]),
    ]


def _source(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return ""
