"""Filling columns a migration added on rows written before it, in bounded batches.

Run by `notify migrate` after the schema is up to date. Each batch is its own short
transaction, so live consumers and workers are never blocked for long, and an interrupted
run resumes where it stopped."""

from __future__ import annotations

import asyncpg

from notify import segments
from notify.countries import country_of

BATCH = 5000

_NEXT = """SELECT id, body, recipient FROM notifications
    WHERE channel = 'sms' AND segments IS NULL AND id > $1 ORDER BY id LIMIT $2"""
_FILL = """UPDATE notifications n SET segments = u.segments, encoding = u.encoding,
        country = COALESCE(n.country, u.country)
    FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[])
        AS u(id, segments, encoding, country)
    WHERE n.id = u.id AND n.segments IS NULL"""


async def fill_segments(conn: asyncpg.Connection, batch: int = BATCH) -> int:
    """Segments, encoding and country of SMS rows from before migration 8; rows filled."""
    filled, after = 0, 0
    while True:
        rows = await conn.fetch(_NEXT, after, batch)
        if not rows:
            return filled
        counted = [segments.count(r["body"]) for r in rows]
        await conn.execute(
            _FILL,
            [r["id"] for r in rows],
            [c.segments for c in counted],
            [c.encoding for c in counted],
            [country_of(r["recipient"]) for r in rows],
        )
        filled += len(rows)
        after = rows[-1]["id"]
