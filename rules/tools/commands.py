"""`notify rules diff` and `notify rules test` (docs/interfaces.md section 9): exit 0, 1, or 2."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rules.ruleset import RuleSet, load_file
from schemas import Event, RulesError

SAME, DIFFERENT, BROKEN = 0, 1, 2


@dataclass(frozen=True)
class Options:
    """The settings these commands need, so they stay independent of where Settings lives."""

    redis_url: str
    stream: str
    max_event_bytes: int
    default_region: str
    stale_after: timedelta
    redis_cluster: bool = False


def _load(paths: Iterable[str]) -> list[RuleSet] | None:
    """Every file's problems are printed before giving up, not only the first file's."""
    loaded, problems = [], []
    for path in paths:
        try:
            loaded.append(load_file(path))
        except RulesError as exc:
            problems += exc.problems
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return None
    return loaded


def diff(args: argparse.Namespace, options: Options) -> int:
    import redis

    from notify.redis_clients import sync_client_for
    from rules.tools import diff as rules_diff
    from rules.tools import diff_events as rules_diff_events
    from rules.tools import diff_report as rules_diff_report

    loaded = _load([args.old, args.new])
    if loaded is None:
        return BROKEN
    differ = rules_diff.Differ(
        rules_diff.plan(*loaded),
        now=args.now,
        default_region=options.default_region,
        stale_after=options.stale_after,
        examples=max(0, args.examples),
    )
    started = datetime.now(UTC)
    since: timedelta = args.since or timedelta(hours=24)
    items: Iterable[rules_diff_events.Item]
    if args.events:
        source: dict[str, Any] = {"events_file": args.events}
        label = args.events
        items = rules_diff_events.jsonl_file(
            args.events, now=started, max_bytes=options.max_event_bytes
        )
    else:
        source = {
            "stream": options.stream,
            "since": (started - since).isoformat(),
            "until": started.isoformat(),
        }
        label = f"stream {options.stream!r} since {source['since']}"
        client = sync_client_for(options.redis_url, cluster=options.redis_cluster)
        items = rules_diff_events.stream_window(
            client, options.stream, since=since, now=started, max_bytes=options.max_event_bytes
        )
    try:
        for item in items:
            if isinstance(item, Event):
                differ.add(item)
            else:
                differ.dead_letter(item)
    except OSError as exc:
        print(f"notify rules diff: cannot read {args.events}: {exc}", file=sys.stderr)
        return BROKEN
    except redis.RedisError as exc:
        print(f"notify rules diff: cannot read stream {options.stream!r}: {exc}", file=sys.stderr)
        return BROKEN
    shown = rules_diff_report.recipient_shown(args.show_recipients)
    report = differ.report
    if args.json:
        print(json.dumps(rules_diff_report.as_json(report, source, shown), indent=2))
    else:
        print(rules_diff_report.as_text(report, label, shown))
    return DIFFERENT if report.differences else SAME


def test(args: argparse.Namespace, options: Options, default_file: str) -> int:
    from rules.tools import cases as rules_cases

    loaded = _load([args.file or default_file])
    try:
        cases = rules_cases.load_cases(args.cases, options.max_event_bytes)
    except rules_cases.CasesError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return BROKEN
    if loaded is None:
        return BROKEN
    failed = 0
    for case in cases:
        outcome = rules_cases.run_case(
            case, loaded[0], default_region=options.default_region, stale_after=options.stale_after
        )
        failed += not outcome.passed
        print("\n".join(rules_cases.report_lines(outcome)))
    print(
        f"\n{len(cases)} case{'s' if len(cases) != 1 else ''}: "
        f"{len(cases) - failed} passed, {failed} failed"
    )
    return DIFFERENT if failed else SAME
