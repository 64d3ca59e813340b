"""`notify report spend` and `notify sms resume`: what SMS cost, and lifting a country's pause
(CONTRACT section 14). The parsers import nothing heavy; each command imports what it uses."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from cli.rules import _since
from notify.settings import Settings

if TYPE_CHECKING:
    from notify.costs import SpendRow, Totals

_GROUPINGS = ("rule", "country", "day")


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="report_command", required=True)
    spend = sub.add_parser("spend", help="SMS messages, segments and price per group")
    spend.add_argument("--since", type=_since, default=timedelta(days=7),
                       help="how far back (30m, 24h, 7d); default 7d")  # fmt: skip
    spend.add_argument("--by", choices=_GROUPINGS, default="rule")
    spend.add_argument("--json", action="store_true")


def add_sms_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sms_command", required=True)
    resume = sub.add_parser("resume", help="lift a country's pause for the rest of this hour")
    resume.add_argument("country", type=_country)


def _country(text: str) -> str:
    code = text.strip().upper()
    if len(code) != 2 or not code.isalpha():
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 3166 code like GB")
    return code


def report(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from notify import costs, database

    async def run() -> list[SpendRow]:
        conn = await database.connect(settings.database_url, settings.statement_cache_size)
        try:
            return await costs.spend(conn, since=args.since, by=args.by)
        finally:
            await conn.close()

    rows = asyncio.run(run())
    if args.json:
        print(json.dumps([_as_json(r, args.by) for r in rows], indent=2))
        return 0
    print("\n".join(table(rows, args.by, costs.totals(rows))))
    return 0


def _as_json(row: SpendRow, by: str) -> dict[str, object]:
    return {
        by: row.group,
        "messages": row.messages,
        "segments": row.segments,
        "priced": row.priced,
        "price": {unit: str(amount) for unit, amount in row.price.items()},
    }


def _money(price: dict[str, Decimal]) -> str:
    return ", ".join(f"{amount:.4f} {unit}" for unit, amount in sorted(price.items())) or "-"


def table(rows: list[SpendRow], by: str, totals: Totals) -> list[str]:
    lines = [f"{by.upper():<28}{'MESSAGES':>10}{'SEGMENTS':>10}{'PRICED':>8}  PRICE"]
    for r in rows:
        lines.append(
            f"{r.group:<28}{r.messages:>10}{r.segments:>10}{r.priced:>8}  {_money(r.price)}"
        )
    lines.append(
        f"{'total':<28}{totals.messages:>10}{totals.segments:>10}{'':>8}  {_money(totals.price)}"
    )
    return lines


def sms(settings: Settings, args: argparse.Namespace) -> int:
    from notify.country_breaker import CountryBreaker
    from notify.redis_clients import sync_client

    limit = settings.sms_country_hourly_segments
    client = sync_client(settings)
    try:
        breaker = CountryBreaker(client, limit or 0)
        until = breaker.resume(args.country)
        counted = breaker.count(args.country)
    finally:
        client.close()
    at = datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds")
    print(
        f"{args.country}: SMS resumed until {at} "
        f"({counted.segments} segments in the last hour; limit {limit or 'none'})"
    )
    if limit is None:
        print("note: NOTIFY_SMS_COUNTRY_HOURLY_SEGMENTS is not set here", file=sys.stderr)
    return 0
