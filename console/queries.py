"""The console's reads from Postgres: each one a lookup by an indexed column.

Rows come back as plain dicts of every column, so columns other work adds (`provider`,
`segments`, `encoding`, `price`) show up without this module knowing about them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from console.search import Field, Lookup

Row = dict[str, Any]

# One statement per indexed column; the column name comes from the Field enum, never from
# the request. Newest first, ties by id, as the API promises.
_BY_FIELD = {
    f: f"SELECT * FROM notifications WHERE {f.value} = $1 ORDER BY created_at DESC, id DESC "
    "LIMIT $2"
    for f in Field
    if f is not Field.ID
}


@dataclass
class Detail:
    """Everything a notification's page shows."""

    notification: Row
    attempts: list[Row] = field(default_factory=list)
    receipts: list[Row] = field(default_factory=list)
    suppression: Row | None = None
    suppression_history: list[Row] = field(default_factory=list)


async def find(db: asyncpg.Pool, lookup: Lookup, limit: int) -> list[Row]:
    if lookup.field is Field.ID:
        row = await db.fetchrow("SELECT * FROM notifications WHERE id = $1", int(lookup.value))
        return [] if row is None else [dict(row)]
    return [dict(r) for r in await db.fetch(_BY_FIELD[lookup.field], lookup.value, limit)]


async def search(db: asyncpg.Pool, wanted: list[Lookup], limit: int) -> list[Row]:
    """Every row any of the lookups finds, once each, newest first, at most `limit`."""
    found: dict[int, Row] = {}
    for lookup in wanted:
        for row in await find(db, lookup, limit):
            found.setdefault(row["id"], row)
    rows = sorted(found.values(), key=lambda r: (r["created_at"], r["id"]), reverse=True)
    return rows[:limit]


async def detail(db: asyncpg.Pool, notification_id: int) -> Detail | None:
    row = await db.fetchrow("SELECT * FROM notifications WHERE id = $1", notification_id)
    if row is None:
        return None
    n = dict(row)
    attempts = await db.fetch(
        "SELECT * FROM notification_attempts WHERE notification_id = $1 ORDER BY attempt",
        notification_id,
    )
    receipts = await db.fetch(
        "SELECT * FROM notification_receipts WHERE notification_id = $1 ORDER BY received_at, id",
        notification_id,
    )
    suppression, history = await suppression_of(db, n["channel"], n["recipient"])
    return Detail(n, [dict(a) for a in attempts], [dict(r) for r in receipts], suppression, history)


async def suppression_of(
    db: asyncpg.Pool, channel: str, recipient: str
) -> tuple[Row | None, list[Row]]:
    current = await db.fetchrow(
        "SELECT * FROM suppressions WHERE channel = $1 AND recipient = $2", channel, recipient
    )
    history = await db.fetch(
        """SELECT * FROM suppression_events WHERE channel = $1 AND recipient = $2
           ORDER BY at, id""",
        channel,
        recipient,
    )
    return (None if current is None else dict(current)), [dict(h) for h in history]


async def inbound_from(db: asyncpg.Pool, number: str, limit: int) -> list[Row]:
    """The SMS a number sent us, newest first."""
    records = await db.fetch(
        """SELECT id, message_sid, from_number, to_number, body, opt_out_type, received_at
           FROM inbound_messages WHERE from_number = $1 ORDER BY received_at DESC LIMIT $2""",
        number,
        limit,
    )
    return [dict(r) for r in records]


async def decisions(db: asyncpg.Pool, event_id: str) -> list[Row]:
    records = await db.fetch(
        "SELECT * FROM event_decisions WHERE event_id = $1 ORDER BY decided_at", event_id
    )
    return [dict(r) for r in records]


async def decisions_for_subject(db: asyncpg.Pool, subject: str, limit: int) -> list[Row]:
    records = await db.fetch(
        """SELECT * FROM event_decisions WHERE event_subject = $1
           ORDER BY decided_at DESC LIMIT $2""",
        subject,
        limit,
    )
    return [dict(r) for r in records]


async def cancelled_by(db: asyncpg.Pool, event_id: str, subject: str, limit: int) -> list[Row]:
    """Reminders this event cancelled: they share its subject (the indexed column), and
    `cancelled_by` holds its id."""
    records = await db.fetch(
        """SELECT * FROM notifications WHERE event_subject = $1 AND cancelled_by = $2
           ORDER BY created_at DESC, id DESC LIMIT $3""",
        subject,
        event_id,
        limit,
    )
    return [dict(r) for r in records]


async def suppressions(db: asyncpg.Pool, limit: int) -> list[Row]:
    records = await db.fetch(
        "SELECT * FROM suppressions ORDER BY created_at DESC, channel, recipient LIMIT $1", limit
    )
    return [dict(r) for r in records]
