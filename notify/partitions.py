"""The outcome tables, partitioned by the day of the event a notification came from.

A notification's id carries that day: `id = day * DAY_SPAN + sequence % DAY_SPAN` (days
since 1970-01-01, UTC). `notifications` is partitioned by range of `id`, and its attempts
and receipts by range of `notification_id`, with the same bounds; so a lookup by id reads
one partition, a day's three partitions drop together, and each day's attempts and
receipts have foreign keys to that day's notifications.

A republished or redelivered event keeps its `time`, hence its day, hence its partition:
the idempotency key is unique within each partition (a partitioned table cannot have a
unique key without the partition key), which makes it unique for as long as rows are kept.

Before version 10 the tables were plain; `convert` renames them `*_legacy` and attaches them
as the partition of every id below the first day's (see docs/history.md).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg

from schemas import IN_FLIGHT, sql_list

# Ids per day. Keeps ids below 2**53 (JSON numbers read by JavaScript) until the year 2216.
DAY_SPAN = 100_000_000_000
_EPOCH = date(1970, 1, 1)
# How many days ahead beat keeps partitions (tasks/schedule.py).
AHEAD_DAYS = 7
# Serialises partition changes between beat, migrate and a consumer that meets a new day.
_LOCK_ID = 7_242_010


@dataclass(frozen=True)
class Partitioned:
    """One table of the layout: its name and the column its partitions are ranges of."""

    table: str
    key: str


NOTIFICATIONS = Partitioned("notifications", "id")
ATTEMPTS = Partitioned("notification_attempts", "notification_id")
RECEIPTS = Partitioned("notification_receipts", "notification_id")
# In creation order; dropped in reverse (the foreign keys point at the notifications).
TABLES = (NOTIFICATIONS, ATTEMPTS, RECEIPTS)


def id_sql(at: str) -> str:
    """A new notification id for an event at `at` (a SQL expression): one spelling of it."""
    return (
        f"floor(extract(epoch FROM {at}) / 86400)::bigint * {DAY_SPAN}"
        f" + nextval('notifications_id_seq') % {DAY_SPAN}"
    )


def day_number(day: date) -> int:
    return (day - _EPOCH).days


def day_of(notification_id: int) -> date:
    """The event day a notification id belongs to."""
    return _EPOCH + timedelta(days=notification_id // DAY_SPAN)


def bounds(day: date) -> tuple[int, int]:
    """The ids of one day's partitions: [low, high)."""
    low = day_number(day) * DAY_SPAN
    return low, low + DAY_SPAN


def midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC)


def partition(table: Partitioned, day: date) -> str:
    return f"{table.table}_{day:%Y%m%d}"


_DAY_NAME = re.compile(r"^notifications_(\d{8})$")


def today() -> date:
    return datetime.now(UTC).date()


async def partitioned(conn: asyncpg.Connection) -> bool:
    kind = await conn.fetchval(
        "SELECT relkind::text FROM pg_class WHERE oid = 'notifications'::regclass"
    )
    return bool(kind == "p")


async def days(conn: asyncpg.Connection) -> list[date]:
    """The days that have partitions, oldest first."""
    names = await conn.fetch(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = 'notifications'::regclass"""
    )
    found = (_DAY_NAME.match(r["relname"]) for r in names)
    return sorted(datetime.strptime(m[1], "%Y%m%d").date() for m in found if m)


async def legacy_bound(conn: asyncpg.Connection) -> int:
    """The first id of the day partitions: the legacy partition holds every id below it."""
    bound = await conn.fetchval(
        """SELECT substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \\(''?(\\d+)')::bigint
           FROM pg_class c WHERE c.relname = 'notifications_legacy'"""
    )
    return int(bound) if bound is not None else 0


# Loads rows into a day's tables before they have keys and are attached (bench/history.py):
# indexes built once over the data instead of row by row.
Fill = Callable[[asyncpg.Connection, date], Awaitable[None]]


async def create(conn: asyncpg.Connection, day: date, fill: Fill | None = None) -> bool:
    """Create one day's partitions, unless they exist or the legacy partition covers the day.

    Each table is created on its own and then attached, which takes a SHARE UPDATE
    EXCLUSIVE lock on the parent (inserts and updates go on), not the ACCESS EXCLUSIVE of
    CREATE TABLE ... PARTITION OF.
    """
    low, high = bounds(day)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
        if not await partitioned(conn):
            return False  # new code on a database not yet migrated: one plain table
        if await conn.fetchval("SELECT to_regclass($1)", partition(NOTIFICATIONS, day)):
            return False
        if high <= await legacy_bound(conn):
            return False
        for table in TABLES:
            name = partition(table, day)
            await conn.execute(
                f"CREATE TABLE {name} (LIKE {table.table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
            )
        if fill is not None:
            await fill(conn, day)
        for table in TABLES:
            name = partition(table, day)
            if table is NOTIFICATIONS:
                await conn.execute(f"CREATE UNIQUE INDEX {name}_key ON {name} (idempotency_key)")
            else:
                await conn.execute(
                    f"""ALTER TABLE {name} ADD CONSTRAINT {name}_notification
                        FOREIGN KEY (notification_id) REFERENCES {partition(NOTIFICATIONS, day)}
                        (id) ON DELETE CASCADE"""
                )
            await conn.execute(
                f"ALTER TABLE {table.table} ATTACH PARTITION {name} "
                f"FOR VALUES FROM ({low}) TO ({high})"
            )
    return True


async def ensure(conn: asyncpg.Connection, wanted: list[date]) -> list[date]:
    """Create the partitions of these days that are missing; the days created."""
    return [day for day in wanted if await create(conn, day)]


class Seen:
    """The days one process knows have partitions: an insert asks the catalog only when a
    batch brings a day it has not seen (an old event, one from the future, a new day)."""

    def __init__(self) -> None:
        self._days: set[date] = set()

    async def cover(self, conn: asyncpg.Connection, wanted: set[date]) -> None:
        missing = wanted - self._days
        if missing:
            await ensure(conn, sorted(missing - set(await days(conn))))
            self._days |= missing  # days the legacy partition covers included

    def forget(self) -> None:
        """After an insert found no partition (retention dropped a day this process saw)."""
        self._days.clear()


def missing_partition(exc: asyncpg.PostgresError) -> bool:
    return isinstance(exc, asyncpg.CheckViolationError) and "no partition" in str(exc)


async def ensure_ahead(conn: asyncpg.Connection, *, ahead: int = AHEAD_DAYS) -> list[date]:
    """Yesterday's, today's and the next `ahead` days' partitions (beat, migrate)."""
    first = today() - timedelta(days=1)
    return await ensure(conn, [first + timedelta(days=n) for n in range(ahead + 2)])


@dataclass(frozen=True)
class Upkeep:
    """What one run of beat's partition job did (tasks/schedule.py)."""

    created: list[date]
    dropped: list[date]
    # Old enough to drop, but holding rows still in flight (a reminder far ahead): kept.
    busy: list[date]
    newest_end: datetime | None


def cutoff(now: datetime, retention_days: float) -> date:
    """Days before this one are wholly older than the retention period."""
    return (now - timedelta(days=retention_days)).astimezone(UTC).date()


async def drop_before(conn: asyncpg.Connection, before: date) -> tuple[list[date], list[date]]:
    """Drop whole days older than `before`: no row is deleted, so no vacuum follows.
    Returns the days dropped and the days kept because rows in them are still in flight.

    A day whose partitions are locked (a long transaction) is left for the next run rather
    than queueing every insert behind the DROP's ACCESS EXCLUSIVE lock.
    """
    dropped: list[date] = []
    busy: list[date] = []
    for day in await days(conn):
        if day >= before:
            break
        name = partition(NOTIFICATIONS, day)
        if await conn.fetchval(
            f"SELECT EXISTS (SELECT FROM {name} WHERE status IN {sql_list(IN_FLIGHT)})"
        ):
            busy.append(day)
            continue
        names = ", ".join(partition(t, day) for t in reversed(TABLES))
        try:
            async with conn.transaction():
                await conn.execute("SET LOCAL lock_timeout = '2s'")
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
                await conn.execute(f"DROP TABLE IF EXISTS {names}")
        except asyncpg.LockNotAvailableError:
            break
        dropped.append(day)
    return dropped, busy


async def upkeep(conn: asyncpg.Connection, *, retention_days: float) -> Upkeep:
    """Partitions ahead, and whole days past retention dropped."""
    created = await ensure_ahead(conn)
    dropped, busy = await drop_before(conn, cutoff(datetime.now(UTC), retention_days))
    return Upkeep(created, dropped, busy, await newest_end(conn))


async def newest_end(conn: asyncpg.Connection) -> datetime | None:
    """When the newest day partition ends (the alert: no partition for tomorrow)."""
    found = await days(conn)
    if not found:
        return None
    return datetime.combine(found[-1] + timedelta(days=1), datetime.min.time(), UTC)
