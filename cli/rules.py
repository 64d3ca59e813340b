"""`notify rules check|preview|schema|diff|test`: the arguments, and which tool runs.

The tools live in `rules.tools`; each is imported only when its subcommand runs.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import datetime, timedelta
from typing import Any

from notify.settings import Settings
from schemas.rules import is_duration, parse_duration

_SINCE = re.compile(r"^\d+(\.\d+)?[smhd]$")


def _since(text: str) -> timedelta:
    if not _SINCE.match(text) or not is_duration(text) or parse_duration(text) <= timedelta(0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30m, 24h or 7d")
    return parse_duration(text)


def _instant(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time") from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset, e.g. Z")
    return when


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="rules_command", required=True)
    check = sub.add_parser("check", help="exit 1 with FILE:LINE:COL lines if the file is invalid")
    check.add_argument("file", nargs="?")
    preview = sub.add_parser("preview", help="show what an event would produce")
    preview.add_argument("file", nargs="?")
    preview.add_argument("--event", help="a JSON file: {id, type, data, subject, ...}")
    preview.add_argument("--type", dest="event_type")
    preview.add_argument("--data", help="a JSON object")
    preview.add_argument("--subject")
    preview.add_argument("--json", action="store_true", help="machine-readable output")
    preview.add_argument(
        "--suppressions",
        action="store_true",
        help="also look the recipients up in DATABASE_URL's suppressions (read-only)",
    )
    sub.add_parser("schema", help="print the JSON Schema of the rules file")
    _add_diff_and_test(sub)


def _add_diff_and_test(sub: Any) -> None:
    """Add `diff` and `test` to the `notify rules` subcommands."""
    diff = sub.add_parser("diff", help="what changes if OLD rules are replaced by NEW")
    diff.add_argument("old", metavar="OLD")
    diff.add_argument("new", metavar="NEW")
    source = diff.add_mutually_exclusive_group()
    source.add_argument(
        "--since",
        type=_since,
        metavar="DURATION",
        help="events in the stream from this window (default 24h)",
    )
    source.add_argument("--events", metavar="FILE.jsonl", help="one event per line instead")
    diff.add_argument(
        "--examples", type=int, default=3, metavar="N", help="examples shown per rule (default 3)"
    )
    diff.add_argument(
        "--now",
        type=_instant,
        metavar="TIME",
        help="route every event as at this time (default: its own time)",
    )
    diff.add_argument(
        "--show-recipients", action="store_true", help="print recipients in full instead of masked"
    )
    diff.add_argument("--json", action="store_true", help="machine-readable output")
    test = sub.add_parser("test", help="check the rules against cases of expected notifications")
    test.add_argument("file", nargs="?")
    test.add_argument("--cases", required=True, metavar="CASES.yaml")


def main(settings: Settings, args: argparse.Namespace) -> int:
    if args.rules_command == "schema":
        import json

        from rules.tools.schema import json_schema

        print(json.dumps(json_schema(), indent=2))
        return 0
    if args.rules_command in ("diff", "test"):
        from rules.tools import commands

        options = commands.Options(
            redis_url=settings.redis_url,
            redis_cluster=settings.redis_cluster,
            stream=settings.stream,
            max_event_bytes=settings.max_event_bytes,
            default_region=settings.default_region,
            stale_after=timedelta(seconds=settings.stale_after_seconds),
        )
        if args.rules_command == "diff":
            return commands.diff(args, options)
        return commands.test(args, options, settings.rules_path)
    from rules.ruleset import load_file
    from schemas import RulesError

    path = args.file or settings.rules_path
    try:
        rules = load_file(path)
    except RulesError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 1
    if args.rules_command == "check":
        from rules.tools.encoding_check import warnings

        with open(path, encoding="utf-8") as handle:
            for warning in warnings(rules, handle.read()):
                print(warning, file=sys.stderr)
        print(f"{path}: OK ({len(rules.rules)} rules, version {rules.version})")
        return 0
    from rules.tools.preview import preview

    return preview(rules, args, settings)
