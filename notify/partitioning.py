"""Migration 10: plain outcome tables become partitioned ones, in place.

Nothing is copied. Each table is renamed `<table>_legacy` and attached under a new
partitioned table of the same columns (whatever columns earlier migrations added), as the
partition of every id below `bound` (the first day partition's first id); day partitions
follow from there (notify/partitions.py). `prepare` does the slow parts first, outside the
migration's transaction and under locks that let inserts and updates go on: a CHECK that
proves the bound (added NOT VALID, then validated) and the new indexes (built
CONCURRENTLY). The transaction that follows only renames, creates and attaches, so it holds
its ACCESS EXCLUSIVE locks for milliseconds whatever the row count.
(docs/history.md has the runbook.)

Receipts differ: a receipt whose SID no row has recorded yet has no notification id, and
a null key can only live in a default partition, so the legacy receipts table becomes that
default partition (its CHECK keeps day partitions from needing a scan of it when attached).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from notify import partitions
from notify.partitions import NOTIFICATIONS, RECEIPTS, Partitioned


@dataclass(frozen=True)
class Index:
    table: Partitioned
    name: str
    definition: str  # after `ON <table>`


# Support lookups, newest first (CONTRACT section 11, the console); `notify status` and the
# sweeps. Every index on a parent is built on each of its partitions.
INDEXES = (
    Index(NOTIFICATIONS, "notifications_recipient", "(recipient, created_at)"),
    Index(
        NOTIFICATIONS,
        "notifications_subject",
        "(event_subject, created_at) WHERE event_subject IS NOT NULL",
    ),
    Index(NOTIFICATIONS, "notifications_status", "(status, updated_at)"),
)


# Kept on the legacy partition for its batched deletes; day partitions are dropped whole.
_LEGACY_ONLY = ("notifications_created",)


def _check(table: Partitioned, bound: int) -> str:
    if table is RECEIPTS:
        return f"{table.key} IS NULL OR {table.key} < {bound}"
    return f"{table.key} < {bound}"


def _bound_name(table: Partitioned) -> str:
    return f"{table.table}_partition_bound"


async def _is_plain(conn: asyncpg.Connection, table: str) -> bool:
    kind = await conn.fetchval(
        "SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)", f"public.{table}"
    )
    return bool(kind == "r")


async def _bound(conn: asyncpg.Connection) -> int:
    """The bound an earlier `prepare` chose; else, with rows, one that leaves today and
    tomorrow in the legacy partition (a row the old code wrote for an event keeps meeting
    that event's redeliveries there); else yesterday's first id."""
    found = await conn.fetchval(
        """SELECT substring(pg_get_constraintdef(oid) FROM '< (\\d+)')::bigint
           FROM pg_constraint WHERE conname = $1 AND conrelid = to_regclass('notifications')""",
        _bound_name(NOTIFICATIONS),
    )
    if found is not None:
        return int(found)
    empty = await conn.fetchval("SELECT NOT EXISTS (SELECT FROM notifications)")
    return partitions.bounds(partitions.today() + timedelta(days=-1 if empty else 2))[0]


async def prepare(conn: asyncpg.Connection) -> None:
    """The slow, non-blocking parts on a database that still has plain tables (autocommit)."""
    if not await _is_plain(conn, NOTIFICATIONS.table):
        return
    if await conn.fetchval("SELECT NOT EXISTS (SELECT FROM notifications)"):
        return  # nothing slow to do: `convert` does it all
    bound = await _bound(conn)
    for table in partitions.TABLES:
        name = _bound_name(table)
        exists = await conn.fetchval(
            "SELECT convalidated FROM pg_constraint WHERE conname = $1", name
        )
        if exists is None:
            await conn.execute(
                f"ALTER TABLE {table.table} ADD CONSTRAINT {name} "
                f"CHECK ({_check(table, bound)}) NOT VALID"
            )
        if not exists:
            await conn.execute(f"ALTER TABLE {table.table} VALIDATE CONSTRAINT {name}")
    for index in INDEXES:
        legacy = index.name.replace(index.table.table, f"{index.table.table}_legacy", 1)
        # A build that failed half way leaves an invalid index: drop it and build again.
        await conn.execute(
            """DO $$ BEGIN IF EXISTS (SELECT FROM pg_index WHERE NOT indisvalid
                   AND indexrelid = to_regclass('"""
            + legacy
            + """')) THEN
                   EXECUTE 'DROP INDEX """
            + legacy
            + """'; END IF; END $$"""
        )
        await conn.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {legacy} "
            f"ON {index.table.table} {index.definition}"
        )


async def convert(conn: asyncpg.Connection) -> None:
    """Inside the migration's transaction: the new layout, legacy tables attached."""
    if not await _is_plain(conn, NOTIFICATIONS.table):
        return  # already partitioned
    # All three at once, in the order the consumer and workers take them.
    names = ", ".join(t.table for t in partitions.TABLES)
    await conn.execute(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE")
    bound = await _bound(conn)
    for table in partitions.TABLES:
        await _replace(conn, table, bound)
    await conn.execute(
        f"ALTER TABLE notifications ALTER COLUMN id SET DEFAULT {partitions.id_sql('now()')}"
    )
    await partitions.ensure_ahead(conn)


async def _replace(conn: asyncpg.Connection, table: Partitioned, bound: int) -> None:
    name, legacy = table.table, f"{table.table}_legacy"
    check = _bound_name(table)
    if await conn.fetchval("SELECT 1 FROM pg_constraint WHERE conname = $1", check) is None:
        # No `prepare` ran (a new database, or one migrated by SQL alone): validated here.
        await conn.execute(
            f"ALTER TABLE {name} ADD CONSTRAINT {check} CHECK ({_check(table, bound)})"
        )
    for index in INDEXES:
        if index.table is table:
            own = index.name.replace(name, legacy, 1)
            await conn.execute(f"CREATE INDEX IF NOT EXISTS {own} ON {name} {index.definition}")
    await conn.execute(f"ALTER TABLE {name} RENAME TO {legacy}")
    await _rename_indexes(conn, name, legacy)
    await conn.execute(
        f"CREATE TABLE {name} (LIKE {legacy} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) "
        f"PARTITION BY RANGE ({table.key})"
    )
    await conn.execute(f"ALTER TABLE {name} DROP CONSTRAINT {check}")
    await _copy_keys_and_indexes(conn, table, legacy)
    await _move_triggers(conn, name, legacy)
    for row in await conn.fetch(
        """SELECT attname, pg_get_serial_sequence($1, attname) AS seq FROM pg_attribute
           WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped""",
        legacy,
    ):
        if row["seq"] is not None:  # dropping the legacy table must not drop the sequence
            await conn.execute(f"ALTER SEQUENCE {row['seq']} OWNED BY {name}.{row['attname']}")
    where = "DEFAULT" if table is RECEIPTS else f"FOR VALUES FROM (MINVALUE) TO ({bound})"
    await conn.execute(f"ALTER TABLE {name} ATTACH PARTITION {legacy} {where}")
    if table is not RECEIPTS:
        # The attach proved it; the receipts keep theirs, which spares every later attach
        # a scan of the default partition.
        await conn.execute(f"ALTER TABLE {legacy} DROP CONSTRAINT {check}")


async def _rename_indexes(conn: asyncpg.Connection, name: str, legacy: str) -> None:
    """The legacy table's indexes take its name, so the parent's keep the old ones."""
    for row in await conn.fetch(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = $1::regclass",
        legacy,
    ):
        old = row["relname"]
        if old.startswith(f"{name}_") and not old.startswith(f"{legacy}_"):
            await conn.execute(f"ALTER INDEX {old} RENAME TO {legacy}{old[len(name) :]}")


async def _copy_keys_and_indexes(conn: asyncpg.Connection, table: Partitioned, legacy: str) -> None:
    """The legacy table's keys and indexes, on the parent under their old names.

    A unique key without the partition key cannot exist on a partitioned table: the
    idempotency key is unique per partition instead (partitions.create); the attempts' and
    receipts' own `id` keys stay on the legacy partition, where anything that looks a row up
    by them looks."""
    rows = await conn.fetch(
        """SELECT c.relname, pg_get_indexdef(i.indexrelid) AS def, i.indisunique,
               con.contype, pg_get_constraintdef(con.oid) AS condef,
               EXISTS (SELECT FROM unnest(i.indkey) k JOIN pg_attribute a
                   ON a.attrelid = i.indrelid AND a.attnum = k WHERE a.attname = $2) AS keyed
           FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
           LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid
               AND con.contype IN ('p', 'u')
           WHERE i.indrelid = $1::regclass""",
        legacy,
        table.key,
    )
    for r in rows:
        original = r["relname"].replace(legacy, table.table, 1)
        if (r["indisunique"] and not r["keyed"]) or original in _LEGACY_ONLY:
            continue
        if r["contype"] is not None:
            await conn.execute(f"ALTER TABLE {table.table} ADD CONSTRAINT {original} {r['condef']}")
            continue
        definition = r["def"].split(" USING ", 1)[1]
        unique = "UNIQUE " if r["indisunique"] else ""
        await conn.execute(f"CREATE {unique}INDEX {original} ON {table.table} USING {definition}")


async def _move_triggers(conn: asyncpg.Connection, name: str, legacy: str) -> None:
    """Statement triggers (the outbox's) fire on the parent: rows are inserted through it."""
    for row in await conn.fetch(
        "SELECT tgname, pg_get_triggerdef(oid) AS def FROM pg_trigger "
        "WHERE tgrelid = $1::regclass AND NOT tgisinternal",
        legacy,
    ):
        await conn.execute(f'DROP TRIGGER "{row["tgname"]}" ON {legacy}')
        await conn.execute(row["def"].replace(f" ON public.{legacy} ", f" ON {name} ", 1))
