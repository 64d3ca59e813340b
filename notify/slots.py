"""The send-rate limiter's SQL: rows waiting for their sender's turn (tasks/pacing.py).

Kept beside the outcome store (which delegates here) so store.py stays one screenful of the
notification lifecycle.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from schemas import Channel, Status, sql_list

_PENDING, _SENDING = f"'{Status.PENDING.value}'", f"'{Status.SENDING.value}'"


async def release(pool: asyncpg.Pool, held: Sequence[tuple[int, int, datetime | None]]) -> int:
    """Claimed rows that must wait for their sender's turn: back to `pending` and the claim
    undone (its attempt row removed, `attempts` back), because no provider call was made, so
    waiting never spends the attempt budget. `held` is (id, attempt, slot_at): a slot too far
    ahead for a task to wait for is kept on the row, and beat hands the row out."""
    if not held:
        return 0
    ids, attempts, slot_at = (list(x) for x in zip(*held, strict=True))
    result = await pool.execute(
        f"""WITH r AS (
               SELECT * FROM unnest($1::bigint[], $2::int[], $3::timestamptz[])
               AS r(id, attempt, slot_at)),
           gone AS (
               DELETE FROM notification_attempts a USING r
               WHERE a.notification_id = r.id AND a.attempt = r.attempt
                 AND a.finished_at IS NULL)
           UPDATE notifications n SET status = {_PENDING}, attempts = n.attempts - 1,
               slot_at = r.slot_at, updated_at = now()
           FROM r WHERE n.id = r.id AND n.status = {_SENDING} AND n.attempts = r.attempt""",
        ids,
        attempts,
        slot_at,
    )
    return int(result.split()[-1])


async def due(
    pool: asyncpg.Pool, *, within: float, limit: int
) -> list[tuple[int, Channel, datetime]]:
    """Pending rows whose send slot is less than `within` seconds away, for beat to hand out
    (the slot is cleared, so the next run does not hand them out again)."""
    records = await pool.fetch(
        f"""WITH due AS (
               SELECT id, slot_at FROM notifications
               WHERE status = {_PENDING} AND slot_at IS NOT NULL
                 AND slot_at <= now() + make_interval(secs => $1)
               ORDER BY slot_at LIMIT $2 FOR UPDATE SKIP LOCKED)
           UPDATE notifications n SET slot_at = NULL, updated_at = now()
           FROM due WHERE n.id = due.id
           RETURNING n.id, n.channel, due.slot_at""",
        within,
        limit,
    )
    return [(r["id"], Channel(r["channel"]), r["slot_at"]) for r in records]


async def queued_sms(pool: asyncpg.Pool, *, sample: int) -> tuple[int, list[str]]:
    """SMS rows waiting to be sent (pending or sending), and the bodies of up to `sample` of
    them: enough to estimate their segments without reading a whole storm."""
    waiting = sql_list({Status.PENDING, Status.SENDING})
    record = await pool.fetchrow(
        f"""SELECT count(*) AS n, ARRAY(
               SELECT body FROM notifications
               WHERE channel = 'sms' AND status IN {waiting} LIMIT $1) AS bodies
            FROM notifications WHERE channel = 'sms' AND status IN {waiting}""",
        sample,
    )
    assert record is not None
    return int(record["n"]), list(record["bodies"])
