"""Delivery receipts in Postgres: record them, and move rows along the status machine.

Three ways a receipt arrives, one way it moves a row (`_settle`): only a row in
`schemas.receipts.SETTLEABLE` (`sent`) moves, to the first settling status of its receipts,
so duplicates, late and reordered reports change nothing once a row is final.

A callback may beat the worker's commit of the SID it names. It is stored with no
notification, and applied when the SID lands (`apply_pending`, in the same transaction as the
statement that records the SID). Both sides take a per-SID advisory lock before the statement
that reads the other's rows, so one of them always sees the other's commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from notify.suppressions import NewSuppression, add_many, count_added
from schemas import Channel, Receipt, ReceiptSource, Settled, Status, Suppression, sql_list
from schemas.receipts import SETTLEABLE, SETTLES, SUPPRESSING_RECEIPTS

# Two-key advisory locks live apart from the one-key lock `notify migrate` takes.
SID_LOCK_SPACE = 7_242_002

_SETTLEABLE = sql_list(SETTLEABLE)
_DELIVERED = f"'{Status.DELIVERED.value}'"
# Twilio status -> our status, as a SQL relation built from the one table in schemas.
_SETTLES = "(VALUES " + ", ".join(f"('{k}', '{v.value}')" for k, v in SETTLES.items()) + ")"


def _moved(alias: str) -> str:
    """What a settling UPDATE returns: the row, and when the receipt came (from `alias`)."""
    return f"""n.id, n.channel, n.status, n.error_code, n.provider_message_id, n.event_time,
        {alias}.received_at, n.recipient"""


def _settle(source: str) -> str:
    """The one UPDATE a receipt makes: `source` has (id, settles, code, received_at), one row
    per notification; a delivered row keeps its error code, the others take Twilio's."""
    return f"""UPDATE notifications n SET status = s.settles, updated_at = now(),
               error_code = CASE WHEN s.settles = {_DELIVERED} THEN n.error_code ELSE s.code END
           FROM {source} s WHERE n.id = s.id AND n.status IN {_SETTLEABLE}
           RETURNING {_moved("s")}"""


# SIDs locked in sorted order, so two lockers never wait on each other in a cycle.
LOCK_SIDS = f"""SELECT count(pg_advisory_xact_lock({SID_LOCK_SPACE}, hashtext(sid)))
    FROM (SELECT DISTINCT unnest($1::text[]) AS sid ORDER BY 1) AS sids"""

_RECORD_CALLBACKS = f"""
WITH c AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::timestamptz[]) WITH ORDINALITY AS c(sid, status, settles, code, token, received_at,
        ord)),
known AS (
    SELECT DISTINCT ON (provider_message_id) id, provider_message_id AS sid
    FROM notifications WHERE provider_message_id = ANY($1::text[])
    ORDER BY provider_message_id, id),
stored AS (
    INSERT INTO notification_receipts (notification_id, provider_message_id, provider_status,
        error_code, source, idempotency_token, received_at)
    SELECT k.id, c.sid, c.status, c.code, '{ReceiptSource.CALLBACK.value}', c.token,
        c.received_at
    FROM c LEFT JOIN known k ON k.sid = c.sid ORDER BY c.ord
    RETURNING notification_id, provider_message_id),
first_final AS (
    SELECT DISTINCT ON (k.id) k.id, c.settles, c.code, c.received_at
    FROM c JOIN known k ON k.sid = c.sid WHERE c.settles IS NOT NULL
    ORDER BY k.id, c.ord),
moved AS ({_settle("first_final")})
SELECT true AS moved, * FROM moved
UNION ALL
SELECT false, NULL, NULL, NULL, NULL, provider_message_id, NULL, NULL, NULL
FROM stored WHERE notification_id IS NULL
"""

APPLY_PENDING = f"""
WITH matched AS (
    UPDATE notification_receipts r SET notification_id = n.id
    FROM notifications n
    WHERE r.notification_id IS NULL AND r.provider_message_id = ANY($1::text[])
      AND n.provider_message_id = r.provider_message_id
    RETURNING r.id AS receipt_id, n.id, r.provider_status, r.error_code, r.received_at),
first_final AS (
    SELECT DISTINCT ON (m.id) m.id, v.settles, m.error_code AS code, m.received_at
    FROM matched m JOIN {_SETTLES} AS v(provider_status, settles) USING (provider_status)
    ORDER BY m.id, m.receipt_id)
{_settle("first_final")}
"""

_RECORD_LOOKUPS = f"""
WITH l AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
        $6::timestamptz[]) AS l(id, sid, status, settles, code, received_at)),
stored AS (
    INSERT INTO notification_receipts (notification_id, provider_message_id, provider_status,
        error_code, source, received_at)
    SELECT id, sid, status, code, '{ReceiptSource.LOOKUP.value}', received_at
    FROM l WHERE status IS NOT NULL)
UPDATE notifications n SET receipt_lookups = n.receipt_lookups + 1, updated_at = now(),
    status = COALESCE(l.settles, n.status),
    error_code = CASE WHEN l.settles IS NULL OR l.settles = {_DELIVERED} THEN n.error_code
                      ELSE l.code END
FROM l WHERE n.id = l.id AND n.status IN {_SETTLEABLE} AND l.settles IS NOT NULL
RETURNING {_moved("l")}
"""

# A lookup that settled nothing still counts, and sends the row to the back of the queue.
_TOUCH_LOOKED_UP = f"""
UPDATE notifications SET receipt_lookups = receipt_lookups + 1, updated_at = now()
WHERE id = ANY($1::bigint[]) AND status IN {_SETTLEABLE}
"""


def _settled(record: asyncpg.Record) -> Settled:
    return Settled(
        notification_id=record["id"],
        channel=record["channel"],
        status=Status(record["status"]),
        error_code=record["error_code"],
        provider_message_id=record["provider_message_id"],
        event_time=record["event_time"],
        received_at=record["received_at"],
        recipient=record["recipient"],
    )


async def _suppress_dead(conn: asyncpg.Connection, settled: Sequence[Settled]) -> list[Suppression]:
    """Suppress the numbers whose receipt says they must get nothing more (21610), in the
    caller's transaction: the receipt and the suppression commit together."""
    wanted = [
        NewSuppression(Channel(s.channel), s.recipient, reason, f"notification:{s.notification_id}")
        for s in settled
        if s.recipient is not None
        and (reason := SUPPRESSING_RECEIPTS.get(s.error_code or "")) is not None
    ]
    return await add_many(conn, wanted) if wanted else []


async def apply_pending(conn: asyncpg.Connection, sids: Sequence[str]) -> list[Settled]:
    """Apply receipts that came before their SID was recorded. Call it inside the transaction
    that recorded the SIDs, after a statement that took `LOCK_SIDS` for them."""
    if not sids:
        return []
    settled = [_settled(r) for r in await conn.fetch(APPLY_PENDING, list(sids))]
    # Counted before the caller commits: a rollback overcounts the metric, never the ledger.
    count_added(await _suppress_dead(conn, settled))
    return settled


@dataclass(frozen=True)
class Recorded:
    """What a batch of callbacks did: rows it moved, and SIDs no row has recorded yet."""

    settled: list[Settled]
    unmatched: list[str]


@dataclass(frozen=True)
class AwaitingReceipt:
    notification_id: int
    provider_message_id: str


class ReceiptStore:
    """Receipts over a pool; callers own the pool's lifetime."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def record_callbacks(self, receipts: Sequence[Receipt]) -> Recorded:
        """Store a batch of callbacks and settle the rows they name, in one statement."""
        if not receipts:
            return Recorded([], [])
        columns: tuple[list[object], ...] = ([], [], [], [], [], [])
        for r in receipts:
            settles = SETTLES.get(r.provider_status)
            values = (
                r.provider_message_id,
                r.provider_status,
                None if settles is None else settles.value,
                r.error_code,
                r.idempotency_token,
                r.received_at,
            )
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        async with self.pool.acquire() as conn, conn.transaction():
            records = await conn.fetch(_RECORD_CALLBACKS, *columns)
            settled = [_settled(r) for r in records if r["moved"]]
            added = await _suppress_dead(conn, settled)
        count_added(added)
        unmatched = sorted({r["provider_message_id"] for r in records if not r["moved"]})
        return Recorded(settled, unmatched)

    async def apply_unmatched(self, sids: Sequence[str]) -> list[Settled]:
        """A second look for callbacks whose SID was unknown: under the SIDs' locks, so a
        worker still committing them either finishes first or applies them itself."""
        if not sids:
            return []
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.fetchval(LOCK_SIDS, list(sids))
            return await apply_pending(conn, sids)

    async def awaiting(
        self, *, older_than: float, limit: int, max_lookups: int
    ) -> list[AwaitingReceipt]:
        """`sent` SMS with no final status after the receipt timeout, oldest first."""
        records = await self.pool.fetch(
            f"""SELECT id, provider_message_id FROM notifications
                WHERE status IN {_SETTLEABLE} AND channel = 'sms'
                  AND provider_message_id IS NOT NULL
                  -- Only Twilio can be asked by id (Vonage's Messages API has no lookup).
                  AND COALESCE(provider, 'twilio') = 'twilio'
                  AND updated_at < now() - make_interval(secs => $1) AND receipt_lookups < $3
                ORDER BY updated_at LIMIT $2""",
            older_than,
            limit,
            max_lookups,
        )
        return [AwaitingReceipt(r["id"], r["provider_message_id"]) for r in records]

    async def record_lookups(
        self, receipts: Sequence[Receipt], looked_up: Sequence[int]
    ) -> list[Settled]:
        """Store what lookups found and settle rows; every looked-up row counts a lookup."""
        async with self.pool.acquire() as conn, conn.transaction():
            settled: list[Settled] = []
            if receipts:
                columns: tuple[list[object], ...] = ([], [], [], [], [], [])
                for r in receipts:
                    settles = SETTLES.get(r.provider_status)
                    values = (
                        r.notification_id,
                        r.provider_message_id,
                        r.provider_status,
                        None if settles is None else settles.value,
                        r.error_code,
                        r.received_at,
                    )
                    for column, value in zip(columns, values, strict=True):
                        column.append(value)
                records = await conn.fetch(_RECORD_LOOKUPS, *columns)
                settled = [_settled(r) for r in records]
                count_added(await _suppress_dead(conn, settled))
            done = {s.notification_id for s in settled}
            rest = [nid for nid in looked_up if nid not in done]
            if rest:
                await conn.execute(_TOUCH_LOOKED_UP, rest)
        return settled

    async def delete_unmatched_older_than(self, *, days: float, limit: int) -> int:
        """Callbacks for SIDs no row ever recorded (another system on the same account)."""
        result = await self.pool.execute(
            """DELETE FROM notification_receipts WHERE id IN (
                   SELECT id FROM notification_receipts
                   WHERE notification_id IS NULL
                     AND received_at < now() - make_interval(secs => $1 * 86400)
                   LIMIT $2)""",
            days,
            limit,
        )
        return int(result.split()[-1])
