"""History at scale (CONTRACT section 11) on real Postgres: day partitions, idempotency
across them, retention by dropping whole days, the in-place migration of a database the old
schema filled, and beat creating the days ahead."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import asyncpg
import msgspec
import pytest
import pytest_asyncio
import redis

from harness.launcher import ThrowawayDatabase
from notify import partitions
from notify.database import drop_database, with_database
from notify.migrations import migrate
from notify.partitions import ATTEMPTS, NOTIFICATIONS, RECEIPTS, TABLES
from notify.store import OutcomeStore
from rules.routing import idempotency_key
from schemas import Channel, NewNotification, Status
from tests.conftest import DATABASE_URL, require_services
from tests.integration import processes
from tests.integration.helpers import fetch, publish, shipment, wait_for_rows

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def history_url() -> Iterator[str]:
    """A database of this module's own: its tests drop and create whole days."""
    require_services()
    database = ThrowawayDatabase(DATABASE_URL, "notify_history").create()
    yield database.url
    database.drop()


@pytest_asyncio.fixture
async def store(history_url: str) -> AsyncIterator[OutcomeStore]:
    s = await OutcomeStore.connect(history_url, min_size=1, max_size=4)
    yield s
    await s.close()


def note(event: str, at: datetime, status: Status = Status.PENDING) -> NewNotification:
    return NewNotification(
        idempotency_key=idempotency_key(event, "r", "+14155550100"),
        event_id=event,
        event_type="shipment.delayed",
        event_subject=None,
        rule="r",
        channel=Channel.SMS,
        recipient="+14155550100",
        body="hello",
        status=status,
        event_time=at,
    )


def midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, UTC)


async def partition_of(store: OutcomeStore, event: str) -> list[str]:
    records = await store.pool.fetch(
        "SELECT tableoid::regclass::text AS p FROM notifications WHERE event_id = $1", event
    )
    return [r["p"] for r in records]


@pytest.mark.asyncio
async def test_a_republished_event_meets_its_row_across_a_day_boundary(
    store: OutcomeStore,
) -> None:
    """The last instant of yesterday and the first of today are different partitions; each
    event republished (a new stream entry, same id and time, handled a day later as far as
    its own day goes) meets its row there and is a duplicate, not a second row."""
    tag = uuid.uuid4().hex
    today = partitions.today()
    late = note(f"late-{tag}", midnight(today) - timedelta(microseconds=1))
    early = note(f"early-{tag}", midnight(today))
    first = await store.insert([late, early])
    assert first.inserted_keys == {late.idempotency_key, early.idempotency_key}
    again = await store.insert([early, late])
    assert again.inserted_keys == set() and again.duplicates == 2
    assert await partition_of(store, late.event_id) == [
        partitions.partition(NOTIFICATIONS, today - timedelta(days=1))
    ]
    assert await partition_of(store, early.event_id) == [partitions.partition(NOTIFICATIONS, today)]


@pytest.mark.asyncio
async def test_an_event_of_a_day_with_no_partition_creates_it_once(store: OutcomeStore) -> None:
    """An event dated beyond the days beat keeps ahead: the insert creates its day, and its
    republication is a duplicate there."""
    tag = uuid.uuid4().hex
    day = partitions.today() + timedelta(days=40)
    future = note(f"future-{tag}", midnight(day) + timedelta(hours=12))
    assert (await store.insert([future])).inserted_keys == {future.idempotency_key}
    assert (await store.insert([future])).duplicates == 1
    assert await partition_of(store, future.event_id) == [partitions.partition(NOTIFICATIONS, day)]


async def day_counts(conn: asyncpg.Connection, day: date) -> dict[str, int]:
    out = {}
    for table in TABLES:
        name = partitions.partition(table, day)
        exists = await conn.fetchval("SELECT to_regclass($1)", name)
        out[table.table] = await conn.fetchval(f"SELECT count(*) FROM {name}") if exists else -1
    return out


@pytest.mark.asyncio
async def test_retention_drops_whole_days_and_touches_no_other(store: OutcomeStore) -> None:
    """Past retention, a day's notifications, attempts and receipts go together; a day still
    holding a row in flight is kept; later days and unmatched receipts are untouched."""
    tag = uuid.uuid4().hex
    today = partitions.today()
    yesterday, tomorrow = today - timedelta(days=1), today + timedelta(days=1)
    noon = timedelta(hours=12)
    rows = [note(f"{d}-{n}-{tag}", midnight(d) + noon) for d in (yesterday, today, tomorrow)
            for n in range(3)]  # fmt: skip
    await store.insert(rows)
    async with store.pool.acquire() as conn:
        await conn.execute(
            "UPDATE notifications SET status = 'delivered' WHERE event_id <> $1",
            f"{today}-0-{tag}",
        )  # one row of today stays pending: today is in flight
        await conn.execute(
            """INSERT INTO notification_attempts (notification_id, attempt)
               SELECT id, 1 FROM notifications WHERE event_id LIKE '%' || $1""",
            tag,
        )
        await conn.execute(
            """INSERT INTO notification_receipts (notification_id, provider_message_id,
                   provider_status, source)
               SELECT id, 'SM' || id, 'delivered', 'callback' FROM notifications
               WHERE event_id LIKE '%' || $1
               UNION ALL SELECT NULL, 'SM-unmatched-' || $1, 'delivered', 'callback'""",
            tag,
        )
        before = {d: await day_counts(conn, d) for d in (yesterday, today, tomorrow)}
        assert min(before[yesterday].values()) >= 3
        # A retention of -1 days puts the cut at tomorrow: yesterday and today are past it.
        done = await partitions.upkeep(conn, retention_days=-1)
        assert done.dropped == [yesterday] and done.busy == [today]
        assert await day_counts(conn, yesterday) == {t.table: -1 for t in TABLES}
        assert await day_counts(conn, today) == before[today]
        assert await day_counts(conn, tomorrow) == before[tomorrow]
        gone = await conn.fetchval(
            "SELECT count(*) FROM notifications WHERE event_id LIKE $1", f"{yesterday}-%-{tag}"
        )
        unmatched = await conn.fetchval(
            "SELECT count(*) FROM notification_receipts WHERE provider_message_id = $1",
            f"SM-unmatched-{tag}",
        )
        assert gone == 0 and unmatched == 1
        # Later tests of this module insert into yesterday again.
        assert yesterday in await partitions.ensure_ahead(conn)


# The old schema's insert (before version 10): ids from the sequence, one global unique key.
OLD_FILL = """
INSERT INTO notifications (idempotency_key, event_id, event_type, event_subject, rule, channel,
    recipient, body, status, provider_message_id, event_time)
SELECT 'old-' || g, 'old-event-' || g, 'shipment.delayed', 'shipment-' || (g % 50), 'r',
    'sms', '+1415555' || lpad((g % 1000)::text, 4, '0'), 'hello',
    CASE WHEN g % 10 = 0 THEN 'pending' ELSE 'delivered' END, 'SMold' || g, now()
FROM generate_series(1, $1) g
ON CONFLICT (idempotency_key) DO NOTHING
"""


@pytest_asyncio.fixture
async def old_database() -> AsyncIterator[str]:
    """A database at the schema before version 10, filled as the old code filled it."""
    require_services()
    url = with_database(DATABASE_URL, f"notify_old_{uuid.uuid4().hex[:8]}")
    admin = await asyncpg.connect(with_database(DATABASE_URL, "postgres"))
    await admin.execute(f'CREATE DATABASE "{url.rsplit("/", 1)[1]}"')
    await admin.close()
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn, before=10)
        await conn.execute(OLD_FILL, 3000)
        await conn.execute(
            """INSERT INTO notification_attempts (notification_id, attempt, outcome)
               SELECT id, 1, 'sent' FROM notifications"""
        )
        await conn.execute(
            """INSERT INTO notification_receipts (notification_id, provider_message_id,
                   provider_status, source)
               SELECT id, provider_message_id, 'delivered', 'callback' FROM notifications
               WHERE status = 'delivered'
               UNION ALL SELECT NULL, 'SMforeign' || g, 'delivered', 'callback'
               FROM generate_series(1, 5) g"""
        )
    finally:
        await conn.close()
    yield url
    await drop_database(url)


@pytest.mark.asyncio
async def test_migrate_moves_an_old_database_in_place_while_inserts_go_on(
    old_database: str,
) -> None:
    """Version 10 on a database the old schema filled, with a consumer's inserts running
    throughout: no row lost or doubled, foreign keys intact, old events still duplicates,
    and a second run changes nothing."""
    store = await OutcomeStore.connect(old_database, min_size=1, max_size=2)
    written: set[str] = set()
    migrating = True

    async def consumer() -> None:
        n = failures = 0
        while (migrating or n < 5) and failures < 100:
            batch = [note(f"new-{n}-{i}", datetime.now(UTC)) for i in range(20)]
            try:
                written.update((await store.insert(batch)).inserted_keys)
            except asyncpg.PostgresError:
                failures += 1
                continue  # the batch comes back, as a stream entry does
            n += 1

    inserting = asyncio.create_task(consumer())
    conn = await asyncpg.connect(old_database)
    try:
        await asyncio.sleep(0)
        assert await migrate(conn) == [10]
        migrating = False
        await inserting
        assert await migrate(conn) == []
        assert await partitions.partitioned(conn)
        keys = await conn.fetch(
            "SELECT idempotency_key, count(*) AS n FROM notifications GROUP BY 1"
        )
        assert {r["idempotency_key"] for r in keys} == {
            f"old-{g}" for g in range(1, 3001)
        } | written
        assert max(r["n"] for r in keys) == 1
        legacy = await conn.fetchval(
            "SELECT count(*) FROM notifications WHERE tableoid = 'notifications_legacy'::regclass"
        )
        assert legacy >= 3000
        orphans = await conn.fetchval(
            """SELECT count(*) FROM notification_attempts a
               WHERE NOT EXISTS (SELECT FROM notifications n WHERE n.id = a.notification_id)"""
        )
        counts = [
            await conn.fetchval(f"SELECT count(*) FROM {t.table} WHERE {t.key} < 100000")
            for t in (ATTEMPTS, RECEIPTS)
        ]
        assert orphans == 0 and counts == [3000, 2700]
        unmatched = await conn.fetchval(
            "SELECT count(*) FROM notification_receipts WHERE notification_id IS NULL"
        )
        assert unmatched == 5
        for table in TABLES:  # the sequences outlive the legacy tables
            owner = await conn.fetchval(
                "SELECT pg_get_serial_sequence($1, 'id')::regclass::text", table.table
            )
            assert owner is not None
        # The old code's rows and a redelivery of their events meet in the legacy partition.
        old = [
            msgspec.structs.replace(
                note(f"old-event-{g}", datetime.now(UTC)), idempotency_key=f"old-{g}"
            )
            for g in (1, 2, 3)
        ]
        again = await store.insert(old, redelivered=frozenset(n.idempotency_key for n in old))
        assert again.inserted_keys == set() and again.duplicates == 3
    finally:
        migrating = False
        await inserting
        await conn.close()
        await store.close()


def test_beat_creates_the_days_ahead_and_a_republished_event_stays_one_row(
    history_url: str,
    start_pipeline: processes.StartPipeline,
    procs: processes.Start,
    tmp_path: Path,
    redis_client: redis.Redis,
) -> None:
    """With the days after tomorrow dropped, beat's partitions job puts them back; and an
    event from the last instant of yesterday, published twice through the consumer, is one
    notification per rule."""
    today = partitions.today()
    ahead = [today + timedelta(days=n) for n in range(2, partitions.AHEAD_DAYS + 1)]
    names = [partitions.partition(t, d) for d in ahead for t in reversed(TABLES)]
    fetch(history_url, f"DROP TABLE IF EXISTS {', '.join(names)}")
    env = start_pipeline(DATABASE_URL=history_url, NOTIFY_PARTITIONS_SECONDS="1").env
    procs(processes.beat(env, tmp_path)).wait_for_log("beat: Starting")

    def created() -> bool:
        found = fetch(history_url, "SELECT count(to_regclass(n)) AS n FROM unnest($1::text[]) n",
                      names)  # fmt: skip
        return bool(found[0]["n"] == len(names))

    processes.wait_until(created, timeout=60, interval=0.5, message=lambda: "days ahead created")
    tag = uuid.uuid4().hex[:8]
    last = (midnight(today) - timedelta(microseconds=1)).isoformat().replace("+00:00", "Z")
    stream = env["NOTIFY_STREAM"]
    for _ in range(2):  # republished: a second stream entry with the same id and time
        publish(redis_client, stream, f"late-{tag}", "shipment.delayed", shipment(1), time=last)
    publish(redis_client, stream, f"after-{tag}", "shipment.delayed", shipment(2))
    wait_for_rows(history_url, f"after-{tag}", 2)
    late = wait_for_rows(history_url, f"late-{tag}", 2)
    part = partitions.partition(NOTIFICATIONS, today - timedelta(days=1))
    assert {partitions.day_of(r["id"]) for r in late} == {today - timedelta(days=1)}
    assert fetch(history_url, f"SELECT count(*) AS n FROM {part} WHERE event_id = $1",
                 f"late-{tag}")[0]["n"] == 2  # fmt: skip
