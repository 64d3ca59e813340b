"""`notify suppressions list|add|remove`: what operators see and change (interfaces section 6).

The table masks recipients like the logs do; `--json` shows them in full, for scripts that
feed upstream systems. Changes are recorded with the source `cli:<user>`.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from notify import database, suppressions
from notify.logs import mask
from notify.settings import Settings
from rules.recipients import InvalidRecipient, normalise
from schemas import Channel, Reason, Suppression

T = TypeVar("T")


def operator() -> str:
    """The source of an operator's change: `cli:<login>`."""
    try:
        user = getpass.getuser()
    except OSError:  # no login name and no passwd entry (a bare container)
        user = "unknown"
    return f"cli:{user}"


def as_json(s: Suppression) -> dict[str, object]:
    return {
        "channel": s.channel.value,
        "recipient": s.recipient,
        "reason": s.reason.value,
        "source": s.source,
        "created_at": s.created_at.isoformat(),
        "flag": s.flag,
    }


def table(rows: list[Suppression]) -> list[str]:
    lines = [f"{'CHANNEL':<8}{'RECIPIENT':<24}{'REASON':<15}{'CREATED':<27}SOURCE"]
    for s in rows:
        created = s.created_at.isoformat(timespec="seconds")
        flag = f"  [{s.flag}]" if s.flag else ""
        lines.append(
            f"{s.channel.value:<8}{mask(s.recipient):<24}{s.reason.value:<15}{created:<27}"
            f"{s.source}{flag}"
        )
    return lines


def _with_db(settings: Settings, call: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    async def run() -> T:
        conn = await database.connect(settings.database_url, settings.statement_cache_size)
        try:
            return await call(conn)
        finally:
            await conn.close()

    return asyncio.run(run())


def main(settings: Settings, args: argparse.Namespace) -> int:
    command = args.suppressions_command
    if command == "list":
        channel = None if args.channel is None else Channel(args.channel)
        found = _with_db(settings, lambda conn: suppressions.list_all(conn, channel))
        if args.json:
            print(json.dumps([as_json(s) for s in found], indent=2))
        else:
            print("\n".join(table(found)))
            print(f"{len(found)} suppression(s)")
        return 0
    channel = Channel(args.channel)
    try:
        # As the consumer addresses notifications, so a suppression matches them.
        recipient = normalise(channel, args.recipient, settings.default_region)
    except InvalidRecipient as exc:
        print(f"notify suppressions {command}: {args.recipient!r} is not a valid "
              f"{channel.value} recipient ({exc})", file=sys.stderr)  # fmt: skip
        return 2
    shown = f"{channel.value} {mask(recipient)}"
    if command == "add":
        reason = Reason(args.reason)
        changed = _with_db(
            settings,
            lambda conn: suppressions.suppress(conn, channel, recipient, reason, operator()),
        )
        print(f"suppressed {shown} ({reason.value})" if changed else f"{shown} already suppressed")
        return 0
    typed = args.recipient.strip()

    async def lift(conn: asyncpg.Connection) -> bool:
        if await suppressions.unsuppress(conn, channel, recipient, operator()):
            return True
        # An entry stored as typed (an inbound opt-out's `From`, flagged): lift that too.
        return typed != recipient and await suppressions.unsuppress(
            conn, channel, typed, operator()
        )

    changed = _with_db(settings, lift)
    print(f"lifted the suppression of {shown}" if changed else f"{shown} was not suppressed")
    return 0
