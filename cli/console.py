"""`notify console [add-user]`, `notify find` and `notify show`: the console, its users, and
the console's lookups from a terminal for operators without a browser."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from notify.settings import Settings

T = TypeVar("T")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="console_command")
    add = sub.add_parser("add-user", help="add or replace a user (password from standard input)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=["viewer", "support", "operator"])


def add_lookup_arguments(find: argparse.ArgumentParser, show: argparse.ArgumentParser) -> None:
    which = find.add_mutually_exclusive_group(required=True)
    which.add_argument("--recipient", help="a phone number in any format, or a push token")
    which.add_argument("--subject")
    which.add_argument("--event", help="an event id: its notifications and why")
    find.add_argument("--limit", type=int, default=50)
    for p in (find, show):
        p.add_argument("--json", action="store_true")
        p.add_argument(
            "--show-recipients", action="store_true", help="in full (audited) instead of masked"
        )
    show.add_argument("id", type=int, help="a notification id")


def _password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise ValueError("the passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def main(settings: Settings, args: argparse.Namespace) -> int:
    if args.console_command != "add-user":
        from console.server import serve

        return serve(settings)
    from console import users

    try:
        new = users.add(settings.console_users, args.name, users.Role.parse(args.role), _password())
    except (users.UsersError, ValueError) as exc:
        print(f"notify console add-user: {exc}", file=sys.stderr)
        return 2
    verb = "added" if new else "replaced"
    print(f"{verb} {args.name} ({args.role}) in {settings.console_users}")
    return 0


def _with_service(settings: Settings, call: Callable[[Any], Awaitable[T]]) -> T:
    from console.service import ConsoleService
    from notify import database
    from notify.redis_clients import async_client

    async def run() -> T:
        db = await database.pool(
            settings.database_url,
            min_size=1,
            max_size=1,
            statement_cache_size=settings.statement_cache_size,
        )
        client = async_client(settings)
        service = ConsoleService(settings, db, client)
        try:
            return await call(service)
        finally:
            service.close()
            await client.aclose()
            await db.close()

    return asyncio.run(run())


def _caller(args: argparse.Namespace) -> Any:
    from cli.suppressions import operator
    from console.users import Role, User

    return User(operator(), Role.SUPPORT if args.show_recipients else Role.VIEWER, "")


def find(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from console import render_text
    from console.service import Search

    user = _caller(args)
    if args.event:
        found = _with_service(settings, lambda s: s.event(user, args.event))
        print(json.dumps(found, indent=2) if args.json else render_text.event(found))
        return 0
    field, value = ("recipient", args.recipient) if args.recipient else ("subject", args.subject)
    wanted = Search(field, value, max(1, min(args.limit, 500)))
    rows = _with_service(settings, lambda s: s.notifications(user, wanted))
    print(json.dumps(rows, indent=2) if args.json else render_text.table(rows))
    return 0


def show(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from console import render_text

    user = _caller(args)
    found = _with_service(settings, lambda s: s.notification(user, args.id))
    if found is None:
        print(f"notify show: no notification {args.id}", file=sys.stderr)
        return 1
    print(json.dumps(found, indent=2) if args.json else render_text.notification(found))
    return 0
