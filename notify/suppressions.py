"""Suppressions: recipients that must get nothing more (docs/interfaces.md section 6), in Postgres.

Every change (added or lifted) happens in one transaction with its history row in
`suppression_events`, written by `_record_change`: the one place every change passes through,
so the outcomes stream's `recipient.suppressed` / `recipient.unsuppressed` entries (an outbox
row in the same transaction) go there too.

The functions take a pool or a connection. Given a connection they run inside whatever
transaction the caller holds (asyncpg nests one as a savepoint), so a webhook can record the
inbound message and apply it atomically.

The check itself is not here: it is part of the statements that insert, claim and dispatch
notifications (notify/store.py), so it costs no round trip of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeAlias

import asyncpg
from prometheus_client import Counter

from notify.opt_outs import flag_for
from schemas import Channel, Reason, Suppression

ADDED = Counter(
    "notify_suppressions_total",
    "Suppressions added, by channel and reason (by the process that added them)",
    ["channel", "reason"],
)
LIFTED = Counter("notify_suppressions_lifted_total", "Suppressions lifted, by channel", ["channel"])

# A pool, or a connection (its caller's transaction, if any, holds the change).
Db: TypeAlias = asyncpg.Pool | asyncpg.Connection


@dataclass(frozen=True, slots=True)
class NewSuppression:
    """A suppression to add, e.g. from a provider's answer (`source`: who says so)."""

    channel: Channel
    recipient: str
    reason: Reason
    source: str


def start_at_zero() -> None:
    """Every channel x reason at 0, so increase() sees the first suppression."""
    for channel in Channel:
        LIFTED.labels(channel)
        for reason in Reason:
            ADDED.labels(channel, reason)


@asynccontextmanager
async def _transaction(db: Db) -> AsyncIterator[asyncpg.Connection]:
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn, conn.transaction():
            yield conn
    else:
        async with db.transaction():
            yield db


_ADD = """
INSERT INTO suppressions (channel, recipient, reason, source, flag)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
ON CONFLICT (channel, recipient) DO NOTHING
RETURNING channel, recipient, reason, source, created_at, flag
"""

_LIFT = """
DELETE FROM suppressions WHERE channel = $1 AND recipient = $2
RETURNING channel, recipient, reason, source, created_at, flag
"""


def _suppression(record: asyncpg.Record) -> Suppression:
    return Suppression(
        channel=Channel(record["channel"]),
        recipient=record["recipient"],
        reason=Reason(record["reason"]),
        source=record["source"],
        created_at=record["created_at"],
        flag=record["flag"],
    )


async def _record_change(
    conn: asyncpg.Connection, action: str, changes: Sequence[Suppression], source: str | None
) -> None:
    """History of every change, in the transaction that made it. `action`: added | lifted;
    `source`: who lifted it (an added row carries its own).

    The same statement writes each change's outcomes-stream entry to the outbox (interfaces
    section 7: `recipient.suppressed` / `recipient.unsuppressed`, data {channel, recipient,
    reason}), so no change commits without it; its id is the history row's, stable.
    """
    if not changes:
        return
    await conn.execute(
        """WITH e AS (
               INSERT INTO suppression_events (action, channel, recipient, reason, source, flag)
               SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[],
                   $6::text[])
               RETURNING id, action, channel, recipient, reason)
           INSERT INTO outcome_outbox (outcome_id, type, subject, data)
           SELECT 'suppression-' || e.id,
               CASE e.action WHEN 'added' THEN 'recipient.suppressed'
                    ELSE 'recipient.unsuppressed' END,
               NULL,
               json_build_object('channel', e.channel, 'recipient', e.recipient,
                   'reason', e.reason)::text
           FROM e ORDER BY e.id""",
        action,
        [c.channel.value for c in changes],
        [c.recipient for c in changes],
        [c.reason.value for c in changes],
        [source or c.source for c in changes],
        [c.flag for c in changes],
    )


async def add_many(conn: asyncpg.Connection, items: Sequence[NewSuppression]) -> list[Suppression]:
    """Add suppressions inside the caller's transaction; returns those that are new (a
    recipient already suppressed keeps its first reason and source). Not yet counted:
    call `count_added` once the transaction has committed."""
    if not items:
        return []
    returned = await conn.fetch(
        _ADD,
        [i.channel.value for i in items],
        [i.recipient for i in items],
        [i.reason.value for i in items],
        [i.source for i in items],
        [flag_for(i.channel, i.recipient) for i in items],
    )
    added = [_suppression(r) for r in returned]
    await _record_change(conn, "added", added, None)
    return added


def count_added(added: Sequence[Suppression]) -> None:
    for s in added:
        ADDED.labels(s.channel, s.reason).inc()


async def suppress(db: Db, channel: Channel, recipient: str, reason: Reason, source: str) -> bool:
    """Suppress one recipient; False if it already was (nothing changes then)."""
    async with _transaction(db) as conn:
        added = await add_many(conn, [NewSuppression(channel, recipient, reason, source)])
    count_added(added)
    return bool(added)


async def unsuppress(db: Db, channel: Channel, recipient: str, source: str) -> bool:
    """Lift a recipient's suppression; False if it had none."""
    async with _transaction(db) as conn:
        record = await conn.fetchrow(_LIFT, channel.value, recipient)
        if record is None:
            return False
        await _record_change(conn, "lifted", [_suppression(record)], source)
    LIFTED.labels(channel).inc()
    return True


async def get(db: Db, channel: Channel, recipient: str) -> Suppression | None:
    record = await db.fetchrow(
        "SELECT * FROM suppressions WHERE channel = $1 AND recipient = $2", channel, recipient
    )
    return None if record is None else _suppression(record)


async def reasons_for(db: Db, wanted: Sequence[tuple[Channel, str]]) -> dict[tuple[str, str], str]:
    """The suppression reason of each (channel, recipient) that has one (`rules preview`)."""
    records = await db.fetch(
        """SELECT channel, recipient, reason FROM suppressions
           WHERE (channel, recipient) IN (SELECT * FROM unnest($1::text[], $2::text[]))""",
        [channel.value for channel, _ in wanted],
        [recipient for _, recipient in wanted],
    )
    return {(r["channel"], r["recipient"]): r["reason"] for r in records}


async def list_all(db: Db, channel: Channel | None = None) -> list[Suppression]:
    """Every suppression (of one channel), newest first."""
    records = await db.fetch(
        """SELECT * FROM suppressions WHERE $1::text IS NULL OR channel = $1
           ORDER BY created_at DESC, channel, recipient""",
        None if channel is None else channel.value,
    )
    return [_suppression(r) for r in records]
