"""`--only history` (issue 24): the outcome tables at size.

The consumer's insert rate and Postgres CPU per inserted row on empty tables; then ten days
of history filled (`--history-rows`, 10M by default: attempts and receipts in realistic
proportion); the same drains again; the support lookups' p50/p99; `notify status`'s query;
and the time and WAL of dropping one day.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from bench import runs
from bench.env import BenchEnv
from notify import partitions
from notify.partitions import ATTEMPTS, NOTIFICATIONS, RECEIPTS
from notify.store import OutcomeStore

DAYS = 10  # the last nine and today
# Filled ids sit in the upper half of each day's range, clear of the sequence's.
_OFFSET = partitions.DAY_SPAN // 2
_TICK = os.sysconf("SC_CLK_TCK")


class PostgresCpu:
    """CPU of the Postgres backends serving one database, from /proc: the processes whose
    title names it, sampled while they live (a backend's CPU is all its own work).
    Autovacuum workers are left out: what they do depends on what ran before, not on the
    rows being inserted (the fill ends with a VACUUM, so they have little to do)."""

    def __init__(self, database: str) -> None:
        self.marker = f" {database} "
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> dict[int, float]:
        found = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                title = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode()
                if not title.startswith("postgres:") or self.marker not in title:
                    continue
                if title.startswith("postgres: autovacuum"):
                    continue
                fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # exited meanwhile
            found[int(entry.name)] = (int(fields[11]) + int(fields[12])) / _TICK
        return found

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            for pid, cpu in self._sample().items():
                self.first.setdefault(pid, 0.0)
                self.last[pid] = cpu

    def __enter__(self) -> PostgresCpu:
        self.first = self._sample()  # backends alive before: only what they add counts
        self.last = dict(self.first)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def seconds(self) -> float:
        return sum(cpu - self.first.get(pid, 0.0) for pid, cpu in self.last.items())


async def _inserted(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        await asyncio.sleep(1.2)  # backends flush their counters at most once a second
        return int(
            await conn.fetchval(
                """SELECT coalesce(sum(n_tup_ins), 0) FROM pg_stat_user_tables
                   WHERE relname LIKE 'notifications%'"""
            )
        )
    finally:
        await conn.close()


def drains(env: BenchEnv, events: int, label: str) -> dict[str, Any]:
    """One rule and the mix: events/s, the insert ceiling, Postgres CPU per inserted row."""
    database = urlsplit(env.database_url).path.lstrip("/")
    out: dict[str, Any] = {}
    for name, mixed in (("one_rule", False), ("mix", True)):
        before = asyncio.run(_inserted(env.database_url))
        with PostgresCpu(database) as cpu:
            drain = runs.consumer_drain(env, events, f"{label}-{name}", mixed=mixed, ceiling=False)
        rows = asyncio.run(_inserted(env.database_url)) - before
        out[name] = {
            "events_per_s": round(drain["events_per_s"]),
            "consumer_cpu_us_per_event": round(drain["cpu_us_per_event"], 1),
            "rows": rows,
            "postgres_cpu_us_per_row": round(cpu.seconds / max(1, rows) * 1e6, 1),
        }
    return out


def _notifications(target: str, day: date, rows: int, seconds: float) -> str:
    """One day's notifications over its first `seconds`: 70% SMS to 2M numbers, 30% push;
    90% finished well."""
    low = partitions.bounds(day)[0] + _OFFSET
    dn = partitions.day_number(day)
    start = partitions.midnight(day).isoformat()
    return f"""
    INSERT INTO {target} (id, idempotency_key, event_id, event_type, event_subject, rule,
        channel, recipient, body, status, provider_message_id, attempts, event_time,
        created_at, updated_at)
    SELECT {low} + g, encode(sha256(('{dn}-' || g)::bytea), 'hex'), 'fill-{dn}-' || (g / 2),
        'shipment.delayed', 'order-' || (({dn}::bigint * {rows} + g) / 3 % 5000000), 'delay', c.ch,
        CASE WHEN c.ch = 'sms'
             THEN '+1415' || lpad(((g * 7919 + {dn}::bigint * 104729) % 2000000)::text, 7, '0')
             ELSE 'tok-' || (g % 600000) END,
        'Hi Ann, shipment SHP-' || g || ' is 45 min late.',
        CASE WHEN g % 100 >= 97 THEN 'failed' WHEN c.ch = 'push' OR g % 100 >= 90 THEN 'sent'
             ELSE 'delivered' END,
        CASE WHEN g % 100 < 97 THEN
            CASE WHEN c.ch = 'sms' THEN 'SM' || md5('{dn}-' || g)
                 ELSE 'projects/p/messages/{dn}-' || g END END,
        1, t.at, t.at + interval '1 second', t.at + interval '30 seconds'
    FROM generate_series(1::bigint, {rows}) g,
        LATERAL (SELECT CASE WHEN g % 10 < 7 THEN 'sms' ELSE 'push' END AS ch) c,
        LATERAL (SELECT '{start}'::timestamptz + g * interval '{seconds / rows} seconds' AS at) t
    """


def _children(source: str, attempts: str, receipts: str) -> list[str]:
    """Attempts (one each, a retry for 5%) and receipts (SMS: `sent`, then the final one)."""
    return [
        f"""INSERT INTO {attempts} (notification_id, attempt, started_at, finished_at, outcome,
                provider_message_id)
            SELECT id, 1, created_at, created_at + interval '0.3 seconds',
                CASE WHEN status = 'failed' THEN 'failed' ELSE 'sent' END, provider_message_id
            FROM {source} WHERE id % {partitions.DAY_SPAN} >= {_OFFSET}
            UNION ALL
            SELECT id, 2, created_at + interval '2 seconds', created_at + interval '2.3 seconds',
                'sent', provider_message_id
            FROM {source} WHERE id % {partitions.DAY_SPAN} >= {_OFFSET} AND id % 20 = 0""",
        f"""INSERT INTO {receipts} (notification_id, provider_message_id, provider_status,
                source, received_at)
            SELECT n.id, n.provider_message_id, s.reported, 'callback', n.updated_at
            FROM {source} n, LATERAL (VALUES ('sent'), (n.status)) AS s(reported)
            WHERE n.id % {partitions.DAY_SPAN} >= {_OFFSET} AND n.channel = 'sms'
              AND n.status IN ('delivered', 'sent')
              AND NOT (n.status = 'sent' AND s.reported = 'sent' AND n.id % 2 = 0)""",
    ]


async def fill(env: BenchEnv, rows: int) -> dict[str, Any]:
    """`rows` notifications over DAYS days. Days other than today are loaded into their
    tables before keys and attachment (indexes built once); today's go through the parent
    and its indexes, as the consumer's do."""
    per_day = rows // DAYS
    today = partitions.today()
    days = [today + timedelta(days=n) for n in range(1 - DAYS, 1)]
    now = datetime.now(UTC)
    so_far = (now - partitions.midnight(today)).total_seconds() - 60
    conn = await asyncpg.connect(env.database_url)
    try:
        await conn.execute("SET synchronous_commit = off")
        await conn.execute("SET maintenance_work_mem = '256MB'")
        # As if installed DAYS days ago: the (empty) legacy partition ends before them.
        low = partitions.bounds(days[0])[0]
        for table in (NOTIFICATIONS, ATTEMPTS):
            legacy = f"{table.table}_legacy"
            await conn.execute(f"ALTER TABLE {table.table} DETACH PARTITION {legacy}")
            await conn.execute(
                f"ALTER TABLE {table.table} ATTACH PARTITION {legacy} "
                f"FOR VALUES FROM (MINVALUE) TO ({low})"
            )
        started = time.perf_counter()

        async def load(c: asyncpg.Connection, day: date) -> None:
            names = [partitions.partition(t, day) for t in (NOTIFICATIONS, ATTEMPTS, RECEIPTS)]
            await c.execute(_notifications(names[0], day, per_day, 86400))
            for sql in _children(*names):
                await c.execute(sql)

        for day in days:
            if day == today:
                # Through the parent, as the consumer writes; the outbox trigger off (the
                # relay would publish these during the next drain).
                await conn.execute("SET session_replication_role = replica")
                await conn.execute(_notifications("notifications", day, per_day, so_far))
                source = partitions.partition(NOTIFICATIONS, day)
                for sql in _children(source, ATTEMPTS.table, RECEIPTS.table):
                    await conn.execute(sql)
                await conn.execute("SET session_replication_role = DEFAULT")
                continue
            names = ", ".join(partitions.partition(t, day) for t in reversed(partitions.TABLES))
            await conn.execute(f"DROP TABLE IF EXISTS {names}")  # empty: made again, filled
            await partitions.create(conn, day, fill=load)
        await conn.execute(
            "VACUUM ANALYZE notifications, notification_attempts, notification_receipts"
        )
        seconds = time.perf_counter() - started
        counts = {
            t.table: await conn.fetchval(f"SELECT count(*) FROM {t.table}")
            for t in partitions.TABLES
        }
        size = await conn.fetchval(
            """SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid)))
               FROM pg_class c WHERE c.relkind = 'r' AND c.relname LIKE 'notification%'"""
        )
    finally:
        await conn.close()
    return {"seconds": round(seconds, 1), "rows": counts, "days": len(days), "size": size}


LOOKUPS = {
    "recipient_newest_50": "SELECT * FROM notifications WHERE recipient = $1 "
    "ORDER BY created_at DESC LIMIT 50",
    "subject_newest_50": "SELECT * FROM notifications WHERE event_subject = $1 "
    "ORDER BY created_at DESC LIMIT 50",
    "event_id": "SELECT * FROM notifications WHERE event_id = $1",
    "provider_message_id": "SELECT * FROM notifications WHERE provider_message_id = $1",
}
_SAMPLE_COLUMN = {
    "recipient_newest_50": "recipient",
    "subject_newest_50": "event_subject",
    "event_id": "event_id",
    "provider_message_id": "provider_message_id",
}


async def lookups(env: BenchEnv, samples: int = 300) -> dict[str, Any]:
    """Each support lookup with values drawn from the rows, p50/p99 over `samples` runs."""
    conn = await asyncpg.connect(env.database_url)
    try:
        picked = await conn.fetch(
            """SELECT recipient, event_subject, event_id, provider_message_id
               FROM notifications TABLESAMPLE SYSTEM (1) WHERE provider_message_id IS NOT NULL
               LIMIT $1""",
            samples,
        )
        rng = random.Random(24)
        out: dict[str, Any] = {}
        for name, sql in LOOKUPS.items():
            values = [r[_SAMPLE_COLUMN[name]] for r in picked]
            rng.shuffle(values)
            took, found = [], 0
            for value in values:
                t0 = time.perf_counter()
                found += len(await conn.fetch(sql, value))
                took.append((time.perf_counter() - t0) * 1000)
            out[name] = {
                "p50_ms": round(runs.percentile(took, 0.5), 2),
                "p99_ms": round(runs.percentile(took, 0.99), 2),
                "rows_per_lookup": round(found / max(1, len(values)), 1),
            }
        newest = []
        for _ in range(50):
            t0 = time.perf_counter()
            await conn.fetch("SELECT * FROM notifications ORDER BY id DESC LIMIT 50")
            newest.append((time.perf_counter() - t0) * 1000)
        out["newest_50_by_id"] = {
            "p50_ms": round(runs.percentile(newest, 0.5), 2),
            "p99_ms": round(runs.percentile(newest, 0.99), 2),
        }
    finally:
        await conn.close()
    return out


async def status(env: BenchEnv, runs_: int = 10) -> dict[str, Any]:
    """`notify status`'s query (outcomes in the last hour, by status)."""
    store = await OutcomeStore.connect(env.database_url, min_size=1, max_size=1)
    took = []
    try:
        for _ in range(runs_):
            t0 = time.perf_counter()
            await store.status_counts(since_seconds=3600)
            took.append((time.perf_counter() - t0) * 1000)
    finally:
        await store.close()
    return {"p50_ms": round(runs.percentile(took, 0.5), 1), "max_ms": round(max(took), 1)}


async def drop_day(env: BenchEnv) -> dict[str, Any]:
    """Retention of the oldest filled day: its three partitions dropped, timed, with WAL."""
    conn = await asyncpg.connect(env.database_url)
    try:
        day = partitions.today() - timedelta(days=DAYS - 1)
        rows = await conn.fetchval(
            f"SELECT count(*) FROM {partitions.partition(NOTIFICATIONS, day)}"
        )
        lsn = await conn.fetchval("SELECT pg_current_wal_lsn()")
        t0 = time.perf_counter()
        dropped, _ = await partitions.drop_before(conn, day + timedelta(days=1))
        seconds = time.perf_counter() - t0
        wal = await conn.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)", lsn)
        dead = await conn.fetchval(
            """SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables
               WHERE relname LIKE 'notification%'"""
        )
    finally:
        await conn.close()
    return {
        "day_rows": rows,
        "dropped": [str(d) for d in dropped],
        "seconds": round(seconds, 3),
        "wal_bytes": int(wal),
        "dead_tuples_left": int(dead),
    }


def history(env: BenchEnv, rows: int, events: int) -> dict[str, Any]:
    empty = drains(env, events, "history-empty")
    filled = asyncio.run(fill(env, rows))
    return {
        "empty": empty,
        "fill": filled,
        "full": drains(env, events, "history-full"),
        "lookups": asyncio.run(lookups(env)),
        "status": asyncio.run(status(env)),
        "drop_day": asyncio.run(drop_day(env)),
    }
