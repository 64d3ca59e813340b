"""`notify`: the operator's command line (docs/interfaces.md section 4).

The top layer: it dispatches to a side (`consumer`, `webhooks`, the rules tools) through an
import inside the subcommand's function, and the argument parsers import nothing heavy, so
`notify publish` loads neither the template engine nor a database driver.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cli import console as cli_console
from cli import cost as cli_cost
from cli import rules as cli_rules
from cli import suppression_args
from notify import logs
from notify.settings import Settings

if TYPE_CHECKING:  # notify.database loads asyncpg: only `migrate` needs it
    from notify.database import Migrated


def _migrate(settings: Settings, _: argparse.Namespace) -> int:
    import asyncio

    from notify.database import ensure_database
    from notify.migrations import MIGRATIONS

    done = asyncio.run(ensure_database(settings.database_url, settings.statement_cache_size))
    names = {version: name for version, name, _ in MIGRATIONS}
    print("\n".join(migrate_report(done, names)))
    return 0


def migrate_report(done: Migrated, names: dict[int, str]) -> list[str]:
    """What `notify migrate` did, in words: never "up to date" when it changed something."""
    lines = ["created the database"] if done.created else []
    if done.applied:
        applied = ", ".join(f"{v} ({names.get(v, '?')})" for v in done.applied)
        lines.append(f"applied migration{'s' if len(done.applied) > 1 else ''} {applied}")
        lines.append(f"the schema is at version {done.version}")
    else:
        lines.append(f"the schema was already up to date (version {done.version}); nothing applied")
    if done.backfilled:
        lines.append(f"backfilled {done.backfilled} row{'s' if done.backfilled > 1 else ''}")
    return lines


def _consume(settings: Settings, _: argparse.Namespace) -> int:
    import asyncio

    from consumer.loop import consume
    from schemas import RulesError

    try:
        return asyncio.run(consume(settings))
    except RulesError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return 1


def _webhooks(settings: Settings, _: argparse.Namespace) -> int:
    from webhooks.server import serve

    return serve(settings)


def _publish(settings: Settings, args: argparse.Namespace) -> int:
    from notify.dead_letters import event_fields, publish
    from notify.redis_clients import sync_client
    from schemas import EventError

    try:
        fields = event_fields(
            args.type,
            _data_text(args.data),
            event_id=args.id,
            subject=args.subject,
            source=args.source,
            time=args.time,
            max_bytes=settings.max_event_bytes,
        )
    except (ValueError, OSError) as exc:
        print(f"notify publish: {exc}", file=sys.stderr)
        return 2
    except EventError as exc:  # what the consumer would dead-letter at once
        print(f"notify publish: the consumer would dead-letter this ({exc})", file=sys.stderr)
        return 2
    entry = publish(sync_client(settings), settings.stream, fields)
    print(json.dumps({"id": fields["id"], "entry": entry, "stream": settings.stream}))
    return 0


def _data_text(value: str) -> str:
    """`--data`: JSON text, `@FILE` for a file's, `-` for standard input's."""
    if value == "-":
        return sys.stdin.read()
    if value.startswith("@"):
        with open(value[1:], encoding="utf-8") as handle:
            return handle.read()
    return value


def _dlq(settings: Settings, args: argparse.Namespace) -> int:
    from notify.dead_letters import dead_letters, replay, select, table
    from notify.redis_clients import sync_client

    client = sync_client(settings)
    if args.dlq_command == "list":
        entries = dead_letters(client, settings.dlq_stream, count=args.count)
        if args.json:
            for e in entries:
                print(json.dumps(e.as_json()))
        else:
            print("\n".join(table(entries)))
            print(f"{len(entries)} dead letter(s) in {settings.dlq_stream}")
        return 0
    if args.all == bool(args.ids):
        print("notify dlq replay: give dead-letter ids, or --all (not both)", file=sys.stderr)
        return 2
    found = dead_letters(client, settings.dlq_stream, count=100_000)
    chosen = select(found, None if args.all else list(args.ids))
    done = replay(client, settings.stream, settings.dlq_stream, chosen.entries)
    print(f"replayed {len(done)} entr{'y' if len(done) == 1 else 'ies'} to {settings.stream}")
    for unknown in chosen.unknown:
        print(f"notify dlq replay: no dead letter {unknown!r} in {settings.dlq_stream}",
              file=sys.stderr)  # fmt: skip
    return 1 if chosen.unknown else 0


def _rules(settings: Settings, args: argparse.Namespace) -> int:
    from cli import rules

    return rules.main(settings, args)


def _status(settings: Settings, args: argparse.Namespace) -> int:
    from cli import status

    return status.main(settings, args)


def _suppressions(settings: Settings, args: argparse.Namespace) -> int:
    from cli import suppressions

    return suppressions.main(settings, args)


def _console(settings: Settings, args: argparse.Namespace) -> int:
    from cli import console

    return console.main(settings, args)


def _find(settings: Settings, args: argparse.Namespace) -> int:
    from cli import console

    return console.find(settings, args)


def _show(settings: Settings, args: argparse.Namespace) -> int:
    from cli import console

    return console.show(settings, args)


def _report(settings: Settings, args: argparse.Namespace) -> int:
    return cli_cost.report(settings, args)


def _sms(settings: Settings, args: argparse.Namespace) -> int:
    return cli_cost.sms(settings, args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="notify", description="Event-driven SMS and push: operate the pipeline."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create or upgrade the Postgres schema").set_defaults(
        run=_migrate
    )
    sub.add_parser("consume", help="run the stream consumer").set_defaults(run=_consume)
    sub.add_parser(
        "webhooks", help="serve Twilio status callbacks and inbound SMS (NOTIFY_WEBHOOK_PORT)"
    ).set_defaults(run=_webhooks)

    pub = sub.add_parser("publish", help="add one event to the stream")
    pub.add_argument("type")
    pub.add_argument(
        "--data", required=True, help="a JSON object; @FILE reads it from a file, - from stdin"
    )
    pub.add_argument("--id")
    pub.add_argument("--subject")
    pub.add_argument("--source")
    pub.add_argument("--time", help="RFC 3339; default now")
    pub.set_defaults(run=_publish)

    dlq = sub.add_parser("dlq", help="inspect or replay dead-lettered events")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    lst = dlq_sub.add_parser("list")
    lst.add_argument("--count", type=int, default=1000)
    lst.add_argument("--json", action="store_true", help="one JSON object per line")
    rep = dlq_sub.add_parser("replay")
    rep.add_argument("ids", nargs="*", help="dead-letter ids or original entry ids")
    rep.add_argument("--all", action="store_true")
    dlq.set_defaults(run=_dlq)

    rules = sub.add_parser("rules", help="check, preview, test, diff or describe a rules file")
    cli_rules.add_arguments(rules)
    rules.set_defaults(run=_rules)

    supp = sub.add_parser("suppressions", help="list, add or lift suppressed recipients")
    suppression_args.add_arguments(supp)
    supp.set_defaults(run=_suppressions)

    console = sub.add_parser("console", help="serve the web console (NOTIFY_CONSOLE_PORT)")
    cli_console.add_arguments(console)
    console.set_defaults(run=_console)
    find = sub.add_parser("find", help="notifications by recipient, subject or event")
    show = sub.add_parser("show", help="one notification's timeline and explanation")
    cli_console.add_lookup_arguments(find, show)
    find.set_defaults(run=_find)
    show.set_defaults(run=_show)
    report = sub.add_parser("report", help="what SMS cost: `report spend`")
    cli_cost.add_report_arguments(report)
    report.set_defaults(run=_report)

    sms = sub.add_parser("sms", help="lift a country's SMS pause: `sms resume COUNTRY`")
    cli_cost.add_sms_arguments(sms)
    sms.set_defaults(run=_sms)

    status = sub.add_parser("status", help="stream, lag, pending and recent outcomes")
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings.from_env()
    logs.configure(settings.log_level)
    try:
        code: int = args.run(settings, args)
    except Exception as exc:
        line = _service_problem(exc)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2
    return code


def _service_problem(exc: Exception) -> str | None:
    """The one line for a schema not migrated or a service not reachable, else None.

    asyncpg and redis are imported here, on the way out, not with this module: only the
    commands that talk to a service load them."""
    import asyncpg
    import redis.exceptions

    if isinstance(exc, asyncpg.UndefinedTableError):
        # An operator's first run, or an upgrade: say what to do, not a traceback.
        return f"notify: the database is not up to date ({exc}); run `notify migrate`"
    unreachable = (OSError, asyncpg.PostgresConnectionError, redis.exceptions.ConnectionError)
    if isinstance(exc, unreachable):
        return f"notify: cannot reach a service: {type(exc).__name__}: {exc}"
    return None


if __name__ == "__main__":
    sys.exit(main())
