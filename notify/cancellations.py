"""Cancellation as a recorded fact, decided by event time (CONTRACT section 10).

Each cancelling event is kept in `cancellations` (subject, type, event time) for as long as a
reminder from an earlier event could still be written. A cancellable row inserted later is
born `cancelled` when a known cancel of its subject, of a type its own `cancel_on` matches,
has an event time at or after its own event's (statements.INSERT); rows already written are
cancelled as the fact is recorded (RECORD).

Both sides serialize on the subject. Under READ COMMITTED an insert and a cancel committing
concurrently would each miss the other (neither sees the other's uncommitted row), so each
first takes a transaction-scoped advisory lock per subject in a statement of its own: the
statement after it has a fresh snapshot, which holds whatever the lock's previous holder
committed. Locks are taken in hash order, before any other lock of the transaction, so two
lockers never deadlock on them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from notify.statements import SCHEDULED
from notify.statements import literal as _q
from schemas import Status

SUBJECT_LOCK_SPACE = 7_242_003

LOCK_SUBJECTS = f"""
SELECT count(pg_advisory_xact_lock({SUBJECT_LOCK_SPACE}, h))
FROM (SELECT DISTINCT hashtext(s) AS h FROM unnest($1::text[]) AS s ORDER BY 1) AS keys
"""

# A ties counts as earlier: with the default `time` (the stream entry's millisecond) an event
# and its cancel often share one. An event never cancels its own rows.
RECORD = f"""
WITH u AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
    AS u(id, type, subject, time)),
kept AS (
    INSERT INTO cancellations (subject, event_id, event_type, event_time, keep_until)
    SELECT subject, id, type, time, time + make_interval(secs => $5) FROM u
    WHERE time + make_interval(secs => $5) > now()
    ON CONFLICT DO NOTHING),
hit AS (
    SELECT DISTINCT ON (n.id) n.id, u.id AS cancelled_by
    FROM u JOIN notifications n ON n.event_subject = u.subject AND n.status = {SCHEDULED}
    WHERE n.event_id <> u.id AND (n.event_time IS NULL OR n.event_time <= u.time)
      AND EXISTS (SELECT 1 FROM unnest(n.cancel_patterns) p WHERE u.type ~ p)
    ORDER BY n.id, u.time, u.id)
UPDATE notifications n SET status = {_q(Status.CANCELLED)}, cancelled_by = hit.cancelled_by,
    updated_at = now()
FROM hit WHERE n.id = hit.id AND n.status = {SCHEDULED}
"""

PURGE = """
DELETE FROM cancellations WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM cancellations WHERE keep_until < now() LIMIT $1))
"""


@dataclass(frozen=True, slots=True)
class Cancel:
    """A cancelling event as the consumer saw it."""

    event_id: str
    event_type: str
    subject: str
    time: datetime


async def lock_subjects(conn: asyncpg.Connection, subjects: Iterable[str]) -> None:
    """Serialize with every other insert or cancel of these subjects until this commits."""
    await conn.execute(LOCK_SUBJECTS, list(subjects))


async def record(conn: asyncpg.Connection, cancels: Sequence[Cancel], keep_seconds: float) -> int:
    """Cancel the scheduled rows these events cancel and keep the facts for later rows.

    Runs in the caller's transaction; returns how many rows were cancelled."""
    await lock_subjects(conn, (c.subject for c in cancels))
    result = await conn.execute(
        RECORD,
        [c.event_id for c in cancels],
        [c.event_type for c in cancels],
        [c.subject for c in cancels],
        [c.time for c in cancels],
        keep_seconds,
    )
    return int(result.split()[-1])


async def purge(pool: asyncpg.Pool, *, limit: int) -> int:
    """Forget facts no reminder can still need (their `keep_until` has passed)."""
    result = await pool.execute(PURGE, limit)
    return int(result.split()[-1])
