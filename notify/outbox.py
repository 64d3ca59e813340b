"""The outcomes stream (docs/interfaces.md section 7): relay `outcome_outbox` rows to Redis.

Triggers on `notifications` write an outbox row in the statement that changes a status
(migration 2), so an outcome exists exactly when its change committed. The relay moves them
in batches: lock a batch (FOR UPDATE SKIP LOCKED), XADD it in one pipelined round trip, delete
it, commit. A relay that dies after the XADD and before the commit leaves the rows to be
published again: at least once, and each entry's `id` is stable, so readers deduplicate.

Every `notify consume` runs a relay; a transaction-scoped advisory lock lets one publish at a
time, so entries go out in commit order per notification, and a dead relay's turn passes to
another at once (its lock ends with its connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
from prometheus_client import Counter, Gauge

from notify import logs
from notify.outage import TRANSIENT, OutageLog
from notify.redis_clients import AsyncRedis
from schemas import TERMINAL

log = logs.get("outbox")

_RELAY_LOCK = 7_242_003
BATCH = 500
PUBLISH_TIMEOUT = 30.0

BACKLOG = Gauge("notify_outbox_backlog", "Outcomes written but not yet in the outcomes stream")
OLDEST = Gauge(
    "notify_outbox_oldest_seconds", "Age of the oldest outcome not yet published (0 when none)"
)
PUBLISHED = Counter(
    "notify_outcomes_published_total", "Entries added to the outcomes stream", ["type"]
)
for _status in TERMINAL:
    PUBLISHED.labels(f"notification.{_status.value}")


@dataclass(frozen=True)
class Backlog:
    rows: int
    oldest_seconds: float


def entry(record: asyncpg.Record | dict[str, Any]) -> dict[str, str]:
    """One stream entry, fields named as docs/interfaces.md section 1 names an event's."""
    fields = {
        "id": record["outcome_id"],
        "type": record["type"],
        "source": "notify",
        "specversion": "1.0",
        "time": record["time"].isoformat(),
        "data": record["data"],
    }
    if record["subject"] is not None:
        fields["subject"] = record["subject"]
    # A CloudEvents extension attribute: which provider holds the notification (13).
    if record.get("provider") is not None:
        fields["provider"] = record["provider"]
    return fields


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        client: AsyncRedis,
        stream: str,
        maxlen: int,
        *,
        batch: int = BATCH,
        poll_seconds: float = 0.1,
    ) -> None:
        self.pool = pool
        self.client = client
        self.stream = stream
        self.maxlen = maxlen
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.outage = OutageLog("outbox relay", "outcomes wait in Postgres")

    async def relay_once(self) -> int | None:
        """Publish one batch: how many rows, or None when another relay has the turn."""
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _RELAY_LOCK):
                return None
            rows = await conn.fetch(
                """SELECT id, outcome_id, type, subject, time, data, provider FROM outcome_outbox
                   ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED""",
                self.batch,
            )
            if not rows:
                return 0
            pipe = self.client.pipeline(transaction=False)
            for row in rows:
                pipe.xadd(self.stream, entry(row), maxlen=self.maxlen, approximate=True)  # type: ignore[arg-type]
            # Bounded: a Redis that stopped answering must not hold these rows' locks forever
            # (a timeout rolls back; the batch is published again).
            await asyncio.wait_for(pipe.execute(), timeout=PUBLISH_TIMEOUT)
            await conn.execute(
                "DELETE FROM outcome_outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
            )
        for row in rows:
            PUBLISHED.labels(row["type"]).inc()
        return len(rows)

    async def backlog(self) -> Backlog:
        record = await self.pool.fetchrow(
            """SELECT count(*) AS n, extract(epoch FROM now() - min(time)) AS age
               FROM outcome_outbox"""
        )
        assert record is not None
        return Backlog(int(record["n"]), float(record["age"] or 0.0))

    async def run(self, stopping: asyncio.Event, *, sample_seconds: float = 5.0) -> None:
        """Relay until `stopping` is set; a full batch goes again at once, else poll."""
        next_sample = 0.0
        failures = 0
        while not stopping.is_set():
            wait = self.poll_seconds
            try:
                published = await self.relay_once()
                if time.monotonic() >= next_sample:
                    next_sample = time.monotonic() + sample_seconds
                    await self._sample()
                if published == self.batch:
                    wait = 0.0
                self.outage.ended()
                failures = 0
            except TRANSIENT as exc:
                self.outage.started(exc)
                failures += 1
                wait = min(5.0, 0.1 * 2**failures)
            except Exception:  # the consumer must outlive any relay failure
                log.exception("outbox relay failed; retrying")
                wait = 1.0
            if wait:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=wait)

    async def _sample(self) -> None:
        backlog = await self.backlog()
        BACKLOG.set(backlog.rows)
        OLDEST.set(backlog.oldest_seconds)
