"""Postgres connections as every process opens them; create, migrate and drop a database
(`notify migrate`, and throwaway test/bench databases)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from notify.backfills import fill_segments
from notify.migrations import migrate
from notify.settings import Settings

# NOTIFY_DB_STATEMENT_CACHE_SIZE's default, for callers that have no Settings (tests, bench).
STATEMENT_CACHE_SIZE = Settings.statement_cache_size


async def connect(dsn: str, statement_cache_size: int = STATEMENT_CACHE_SIZE) -> asyncpg.Connection:
    """One connection. The statement cache cannot go in the DSN (Postgres rejects it as an
    unknown parameter), so every connection and pool of ours is opened here or by `pool`."""
    return await asyncpg.connect(dsn, statement_cache_size=statement_cache_size)


async def pool(
    dsn: str,
    *,
    min_size: int,
    max_size: int,
    statement_cache_size: int = STATEMENT_CACHE_SIZE,
    **options: Any,
) -> asyncpg.Pool:
    """A pool whose connections keep `statement_cache_size` prepared statements (0: none,
    as a transaction pooler such as PgBouncer needs: a later statement may reach another
    server connection, where the prepared one does not exist)."""
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        statement_cache_size=statement_cache_size,
        **options,
    )


def with_database(dsn: str, name: str) -> str:
    """The same server and credentials, another database."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def _quoted(name: str) -> str:
    return '"' + name.replace('"', "") + '"'


@dataclass(frozen=True)
class Migrated:
    """What `ensure_database` did, for `notify migrate` to say."""

    created: bool  # there was no database of that name
    applied: list[int]  # the migrations' versions, in order
    version: int  # the schema's version now
    backfilled: int = 0  # rows a backfill completed


async def ensure_database(dsn: str, statement_cache_size: int = STATEMENT_CACHE_SIZE) -> Migrated:
    """Create the target database if the server has none of that name, then migrate."""
    created = False
    try:
        conn = await connect(dsn, statement_cache_size)
    except asyncpg.InvalidCatalogNameError:
        name = urlsplit(dsn).path.lstrip("/")
        admin = await connect(with_database(dsn, "postgres"), statement_cache_size)
        try:
            await admin.execute(f"CREATE DATABASE {_quoted(name)}")
            created = True
        except asyncpg.DuplicateDatabaseError:
            pass  # another migrate created it first
        finally:
            await admin.close()
        conn = await connect(dsn, statement_cache_size)
    try:
        applied = await migrate(conn)
        backfilled = await fill_segments(conn)
        version = await conn.fetchval("SELECT max(version) FROM schema_migrations")
    finally:
        await conn.close()
    return Migrated(created, applied, int(version or 0), backfilled)


async def drop_database(dsn: str, statement_cache_size: int = STATEMENT_CACHE_SIZE) -> None:
    """Drop the database `dsn` names, even with clients still connected."""
    name = urlsplit(dsn).path.lstrip("/")
    admin = await connect(with_database(dsn, "postgres"), statement_cache_size)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")
    finally:
        await admin.close()
