"""Create, migrate and drop a database: `notify migrate`, and throwaway test/bench databases."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg

from notify.backfills import fill_segments
from notify.migrations import migrate


def with_database(dsn: str, name: str) -> str:
    """The same server and credentials, another database."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def _quoted(name: str) -> str:
    return '"' + name.replace('"', "") + '"'


async def ensure_database(dsn: str) -> None:
    """Create the target database if the server has none of that name, then migrate."""
    try:
        conn = await asyncpg.connect(dsn)
    except asyncpg.InvalidCatalogNameError:
        name = urlsplit(dsn).path.lstrip("/")
        admin = await asyncpg.connect(with_database(dsn, "postgres"))
        try:
            await admin.execute(f"CREATE DATABASE {_quoted(name)}")
        except asyncpg.DuplicateDatabaseError:
            pass  # another migrate created it first
        finally:
            await admin.close()
        conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await fill_segments(conn)
    finally:
        await conn.close()


async def drop_database(dsn: str) -> None:
    """Drop the database `dsn` names, even with clients still connected."""
    name = urlsplit(dsn).path.lstrip("/")
    admin = await asyncpg.connect(with_database(dsn, "postgres"))
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")
    finally:
        await admin.close()
