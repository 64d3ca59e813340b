"""The outcome store: every notification and provider attempt, in Postgres (asyncpg)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from operator import attrgetter

import asyncpg
import msgspec

from notify import (
    cancellations,
    costs,
    database,
    inserts,
    partitions,
    slots,
    statements,
    suppressions,
    throttles,
)
from notify.cancellations import Cancel
from notify.inbound_messages import InboundStore
from notify.inserts import Inserted
from notify.receipts import LOCK_SIDS, SID_LOCK_SPACE, ReceiptStore, apply_pending
from notify.statements import PENDING, SENDING
from notify.suppressions import NewSuppression
from schemas import (
    IN_FLIGHT,
    AttemptOutcome,
    Channel,
    NewNotification,
    Notification,
    Reason,
    Resolution,
    Settled,
    Status,
    Suppression,
    sql_list,
)


@dataclass(frozen=True, slots=True)
class Finished:
    """One provider attempt's end, as `OutcomeStore.finish_many` records it."""

    notification_id: int
    attempt: int
    status: Status  # the row's next status: sent | failed | pending (to retry)
    outcome: AttemptOutcome
    started_at: datetime | None = None
    provider_message_id: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    # The send may have reached the provider (its answer was lost): the row remembers the
    # earliest such send, and later attempts look for it before sending again.
    unsure: bool = False
    # Only a lookup ran, and it failed: the attempt sent nothing.
    lookup_failed: bool = False
    # The attempt proved its provider did not take the message: the row moves to this one
    # (failover), and forgets any earlier unanswered send (that provider never had it).
    move_to: str | None = None
    # The provider says this recipient must get nothing more (21610, a dead push token):
    # added in the transaction that records the failed attempt.
    suppress: NewSuppression | None = None


# The columns of finish_many's statement, in order.
_FINISHED_FIELDS = attrgetter(*(f.name for f in fields(Finished) if f.name != "suppress"))


# The SIDs' advisory locks are taken before any row changes (an InitPlan the UPDATE needs
# first), so a callback that found no row for a SID waits for this commit (notify/receipts.py).
_FINISH = f"""
WITH f AS (
    SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::timestamptz[],
        $6::text[], $7::text[], $8::text[], $9::bool[], $10::bool[], $11::text[])
    AS f(id, attempt, status, outcome, started_at, provider_message_id, error_code,
         error_message, unsure, lookup_failed, move_to)),
locked AS (
    SELECT count(pg_advisory_xact_lock({SID_LOCK_SPACE}, hashtext(sid))) AS n
    FROM (SELECT DISTINCT provider_message_id AS sid FROM f
          WHERE provider_message_id IS NOT NULL ORDER BY 1) AS sids),
attempt AS (
    UPDATE notification_attempts a SET finished_at = now(), outcome = f.outcome,
        error_code = f.error_code, error_message = f.error_message,
        provider_message_id = f.provider_message_id,
        started_at = COALESCE(f.started_at, a.started_at)
    FROM f WHERE a.notification_id = f.id AND a.attempt = f.attempt)
UPDATE notifications n SET status = f.status, updated_at = now(),
    provider_message_id = COALESCE(f.provider_message_id, n.provider_message_id),
    error_code = f.error_code, error_message = f.error_message,
    unsure_since = CASE WHEN f.move_to IS NOT NULL THEN NULL WHEN f.unsure
        THEN COALESCE(n.unsure_since, f.started_at, now()) ELSE n.unsure_since END,
    provider = COALESCE(f.move_to, n.provider),
    lookup_failures = n.lookup_failures + f.lookup_failed::int
FROM f WHERE n.id = f.id AND n.status = {SENDING} AND (SELECT n FROM locked) >= 0
"""


def _row(record: asyncpg.Record) -> Notification:
    values = dict(record)
    if isinstance(values.get("data"), str):
        values["data"] = msgspec.json.decode(values["data"])
    return msgspec.convert(values, Notification)


async def _keep_session(_: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query on release: we never LISTEN, SET or hold session locks.

    (asyncpg still rolls back a stray transaction.) It halves round trips per short query.
    """


class OutcomeStore:
    """Thin async data access; callers own the pool's lifetime."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.receipts = ReceiptStore(pool)

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 4,
        statement_cache_size: int = database.STATEMENT_CACHE_SIZE,
    ) -> OutcomeStore:
        made = await database.pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            statement_cache_size=statement_cache_size,
            reset=_keep_session,
        )
        return cls(made)

    async def close(self) -> None:
        await self.pool.close()

    async def expire_connections(self) -> None:
        """After a connection-level failure the other pooled connections are suspect too (a
        restart, a failover, terminated backends): replace each at its next use."""
        await self.pool.expire_connections()

    async def insert(
        self, rows: Sequence[NewNotification], redelivered: frozenset[str] = frozenset()
    ) -> Inserted:
        """Insert a batch in one statement; duplicates are expected and returned as counts.

        Existing rows whose key is in `redelivered` and that are still pending get their task
        published again: the crash that caused the redelivery may have come before publishing.
        """
        if not rows:
            return Inserted([], set(), 0)
        async with self.pool.acquire() as conn, conn.transaction():
            return await inserts.insert(conn, rows, redelivered)

    async def cancel(self, cancels: Sequence[Cancel], *, keep_seconds: float) -> int:
        """Cancel scheduled rows these events cancel (by subject, the rows' own cancel_on and
        event time) and keep each fact `keep_seconds` past its event time for rows to come."""
        if not cancels:
            return 0
        async with self.pool.acquire() as conn, conn.transaction():
            return await cancellations.record(conn, cancels, keep_seconds)

    async def forget_cancellations(self, *, limit: int) -> int:
        return await cancellations.purge(self.pool, limit=limit)

    async def get(self, notification_id: int) -> Notification | None:
        record = await self.pool.fetchrow(
            f"SELECT {statements.COLUMNS} FROM notifications WHERE id = $1", notification_id
        )
        return None if record is None else _row(record)

    async def claim(self, notification_id: int, pick: str | None = None) -> Notification | None:
        """pending -> sending with one more attempt, atomically; None if someone else has it.
        A suppressed recipient's row comes back `skipped` instead (see `claim_many`)."""
        claimed = await self.claim_many([notification_id], [pick])
        return claimed[0] if claimed else None

    async def claim_many(
        self, ids: Sequence[int], picks: Sequence[str | None] | None = None
    ) -> list[Notification]:
        """`claim` for a batch: one UPDATE and one INSERT of attempt rows.

        `picks`: the provider for each row that has none yet (its first claim); the attempt
        records the provider the row then holds. The rows of suppressed recipients come back
        `skipped` / `suppressed`, not an attempt: a suppression may land between routing and
        sending, and this is the last look.
        """
        chosen = list(picks) if picks is not None else [None] * len(ids)
        async with self.pool.acquire() as conn, conn.transaction():
            records = await conn.fetch(statements.CLAIM, list(ids), chosen)
            claimed = [r for r in records if r["status"] == Status.SENDING]
            if claimed:
                await conn.execute(
                    """INSERT INTO notification_attempts (notification_id, attempt, provider)
                       SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[])""",
                    [r["id"] for r in claimed],
                    [r["attempts"] for r in claimed],
                    [r["provider"] for r in claimed],
                )
            # OUTBOX: `notification.skipped` for the records whose status is `skipped`.
        return [_row(r) for r in records]

    async def release(self, held: Sequence[tuple[int, int, datetime | None]]) -> int:
        return await slots.release(self.pool, held)

    async def due_slots(self, *, within: float, limit: int) -> list[tuple[int, Channel, datetime]]:
        return await slots.due(self.pool, within=within, limit=limit)

    async def hold_back(self, held: Sequence[tuple[int, int]], code: str, message: str) -> int:
        return await costs.hold_back(self.pool, held, code, message)

    async def unpriced(
        self, *, limit: int, interval_seconds: float, max_lookups: int
    ) -> list[costs.Unpriced]:
        return await costs.unpriced(
            self.pool, limit=limit, interval_seconds=interval_seconds, max_lookups=max_lookups
        )

    async def record_prices(self, prices: Sequence[costs.Price]) -> list[costs.Priced]:
        return await costs.record_prices(self.pool, prices)

    async def finish_many(self, finished: Sequence[Finished]) -> list[Settled]:
        """Record attempts' ends and their rows' next statuses in one (atomic) statement.

        `started_at` is when the provider call began (batch claims insert attempts earlier).
        Only rows still `sending` change: a sweeper that settled a row first wins. Receipts
        that arrived before their SID was recorded are applied in the same transaction
        (notify/receipts.py); the rows they settled are returned.
        Suppressions the provider's answers call for are added in the same transaction.
        """
        if not finished:
            return []
        columns = list(zip(*map(_FINISHED_FIELDS, finished), strict=True))
        wanted = [f.suppress for f in finished if f.suppress is not None]
        sids = [f.provider_message_id for f in finished if f.provider_message_id]
        if not sids and not wanted:  # nothing a receipt could wait for, nothing to suppress
            await self.pool.execute(_FINISH, *columns)
            return []
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_FINISH, *columns)
            added = await suppressions.add_many(conn, wanted)
            settled = await apply_pending(conn, sids) if sids else []
        suppressions.count_added(added)
        return settled

    async def mark_calling(self, notification_id: int, attempt: int) -> None:
        """The provider call is about to begin (providers without a lookup)."""
        await self.pool.execute(
            f"""UPDATE notification_attempts SET outcome = '{AttemptOutcome.CALLING.value}',
                   started_at = now()
               WHERE notification_id = $1 AND attempt = $2 AND finished_at IS NULL""",
            notification_id,
            attempt,
        )

    async def called(self, notification_id: int, attempt: int) -> bool:
        """Whether that attempt may have reached its provider (it got as far as `calling`)."""
        outcome = await self.pool.fetchval(
            """SELECT outcome FROM notification_attempts
               WHERE notification_id = $1 AND attempt = $2""",
            notification_id,
            attempt,
        )
        return bool(outcome != AttemptOutcome.STARTED.value)

    async def taken(self, provider_message_ids: Sequence[str], *, besides: int) -> set[str]:
        """Which of these provider ids other rows than `besides` already hold."""
        if not provider_message_ids:
            return set()
        records = await self.pool.fetch(
            """SELECT provider_message_id FROM notifications
               WHERE provider_message_id = ANY($1::text[]) AND id <> $2""",
            list(provider_message_ids),
            besides,
        )
        return {r["provider_message_id"] for r in records}

    async def dispatch_due(
        self, *, now: datetime, stale_seconds: float, limit: int
    ) -> list[tuple[int, Channel, Status]]:
        """Move due scheduled rows to pending (or failed/expired, or skipped/suppressed when
        the recipient was suppressed since); SKIP LOCKED makes it safe."""
        records = await self.pool.fetch(statements.DISPATCH, now, stale_seconds, limit)
        # OUTBOX: `notification.skipped` / `notification.failed` for the skipped and expired.
        return [(r["id"], Channel(r["channel"]), Status(r["status"])) for r in records]

    async def stuck_pending(self, *, older_than: float, limit: int) -> list[tuple[int, Channel]]:
        """Pending rows nobody picked up (a lost task); touching them spaces out re-enqueues.
        Rows waiting for a far send slot have no task by design: beat hands them out."""
        records = await self.pool.fetch(
            f"""WITH stuck AS (
                   SELECT id FROM notifications
                   WHERE status = {PENDING} AND updated_at < now() - make_interval(secs => $1)
                     AND slot_at IS NULL
                   ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED)
               UPDATE notifications n SET updated_at = now() FROM stuck WHERE n.id = stuck.id
               RETURNING n.id, n.channel""",
            older_than,
            limit,
        )
        return [(r["id"], Channel(r["channel"])) for r in records]

    async def stuck_sending(self, *, older_than: float, limit: int) -> list[Notification]:
        """Rows a worker claimed and never finished: it died between claim and record."""
        records = await self.pool.fetch(
            f"""SELECT {statements.COLUMNS} FROM notifications
                WHERE status = {SENDING} AND updated_at < now() - make_interval(secs => $1)
                ORDER BY updated_at LIMIT $2""",
            older_than,
            limit,
        )
        return [_row(r) for r in records]

    async def resolve_sending(self, row: Notification, resolution: Resolution) -> bool:
        """Settle a stuck row, unless someone touched it since we looked (then leave it)."""
        sid = resolution.provider_message_id
        sids = [sid] if sid else []
        async with self.pool.acquire() as conn, conn.transaction():
            if sids:
                await conn.fetchval(LOCK_SIDS, sids)
            done = await conn.fetchval(
                f"""UPDATE notifications SET status = $3, updated_at = now(),
                       provider_message_id = COALESCE($4, provider_message_id),
                       error_code = $5, error_message = $6
                   WHERE id = $1 AND status = {SENDING} AND updated_at = $2 RETURNING id""",
                row.id,
                row.updated_at,
                resolution.status,
                sid,
                resolution.error_code,
                resolution.error_message,
            )
            if done is None:
                return False
            await conn.execute(
                """UPDATE notification_attempts SET finished_at = now(), outcome = $3,
                       error_code = $4, provider_message_id = $5
                   WHERE notification_id = $1 AND attempt = $2 AND finished_at IS NULL""",
                row.id,
                row.attempts,
                resolution.outcome,
                resolution.error_code,
                sid,
            )
            await apply_pending(conn, sids)
        return True

    async def keep_partitions(self, *, retention_days: float) -> partitions.Upkeep:
        async with self.pool.acquire() as conn:
            return await partitions.upkeep(conn, retention_days=retention_days)

    async def delete_older_than(self, *, days: float, limit: int) -> int:
        """Retention for the legacy partition (rows from before version 10, and events older
        than its bound), by batches of deletes; the day partitions are dropped whole."""
        if await self.pool.fetchval("SELECT to_regclass('notifications_legacy')") is None:
            return 0
        result = await self.pool.execute(
            f"""DELETE FROM notifications_legacy WHERE id IN (
                   SELECT id FROM notifications_legacy
                   WHERE created_at < now() - make_interval(days => 0, secs => $1 * 86400)
                     AND status NOT IN {sql_list(IN_FLIGHT)}
                   LIMIT $2)""",
            days,
            limit,
        )
        return int(result.split()[-1])

    async def queued_sms(self, *, sample: int) -> tuple[int, list[str]]:
        return await slots.queued_sms(self.pool, sample=sample)

    async def forget_expired_throttles(self, *, limit: int) -> int:
        return await throttles.forget_expired(self.pool, limit=limit)

    async def delete_heard_older_than(self, *, days: float, limit: int) -> int:
        """Retention for what providers sent back that no row owns: callbacks for SIDs never
        recorded, and inbound messages. (A row's own receipts go with the row.)"""
        receipts = await self.receipts.delete_unmatched_older_than(days=days, limit=limit)
        inbound = await InboundStore(self.pool).delete_older_than(days=days, limit=limit)
        return receipts + inbound

    async def status_counts(self, *, since_seconds: float) -> dict[str, int]:
        # One range of the (status, updated_at) index per status: Postgres 15 has no skip
        # scan, and a GROUP BY over updated_at alone would need an index of its own.
        records = await self.pool.fetch(
            """SELECT s.status, (SELECT count(*) FROM notifications n WHERE n.status = s.status
                   AND n.updated_at >= now() - make_interval(secs => $1)) AS n
               FROM unnest($2::text[]) AS s(status)""",
            since_seconds,
            [s.value for s in Status],
        )
        return {r["status"]: r["n"] for r in records if r["n"]}

    async def suppress(self, channel: Channel, recipient: str, reason: Reason, source: str) -> bool:
        return await suppressions.suppress(self.pool, channel, recipient, reason, source)

    async def unsuppress(self, channel: Channel, recipient: str, source: str) -> bool:
        return await suppressions.unsuppress(self.pool, channel, recipient, source)

    async def suppressions(self, channel: Channel | None = None) -> list[Suppression]:
        return await suppressions.list_all(self.pool, channel)
