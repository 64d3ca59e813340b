"""Throttles: at most N notifications of a rule per rendered key and recipient per window.

Decided in Postgres, inside the transaction that inserts the rows, so two consumers routing
the same key at the same moment cannot both pass:

1. an advisory lock per idempotency key (in a fixed order): a second consumer handling the
   same event waits here until the first commits, then sees its row;
2. the keys already stored are left out, so a redelivered event is never counted twice;
3. one counted upsert per (rule, key, recipient): the row lock serialises concurrent
   batches, and the count it returns tells which of this batch's rows fit in the window.

A window starts with the first notification counted after the previous one ended (as Knock
and Courier throttle), so `limit: 1, window: 30m` means no two within 30 minutes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import msgspec

from schemas import NewNotification, Status

THROTTLED = "throttled"
# Any constant: it only keeps these locks apart from other advisory locks' keys.
_LOCK_SEED = 7_242_015

_LOCK = """SELECT count(pg_advisory_xact_lock(hashtextextended(k, $2)))
           FROM (SELECT DISTINCT k FROM unnest($1::text[]) AS k ORDER BY k) AS keys"""

_STORED = "SELECT idempotency_key FROM notifications WHERE idempotency_key = ANY($1::text[])"

# Sorted, so concurrent batches take the throttle rows' locks in the same order.
_COUNT = """
INSERT INTO notification_throttles AS t (rule, key, recipient, window_start, window_end, count)
SELECT rule, key, recipient, now(), now() + make_interval(secs => seconds), n
FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::int[])
    AS c(rule, key, recipient, seconds, n)
ORDER BY rule, key, recipient
ON CONFLICT (rule, key, recipient) DO UPDATE SET
    window_start = CASE WHEN t.window_end <= now() THEN now() ELSE t.window_start END,
    window_end = CASE WHEN t.window_end <= now() THEN EXCLUDED.window_end ELSE t.window_end END,
    count = CASE WHEN t.window_end <= now() THEN EXCLUDED.count ELSE t.count + EXCLUDED.count END
RETURNING rule, key, recipient, count
"""

Group = tuple[str, str, str]  # (rule, rendered key, recipient)


@dataclass(frozen=True)
class Candidate:
    index: int  # position in the batch
    group: Group
    limit: int
    window_seconds: float


def candidates(
    rows: Sequence[NewNotification], stored: frozenset[str] = frozenset()
) -> list[Candidate]:
    """Rows to count: throttled, not stored yet, and each idempotency key once."""
    seen: set[str] = set(stored)
    out: list[Candidate] = []
    for index, row in enumerate(rows):
        if row.throttle is None or row.idempotency_key in seen:
            continue
        seen.add(row.idempotency_key)
        group = (row.rule, row.throttle.key, row.recipient)
        out.append(Candidate(index, group, row.throttle.limit, row.throttle.window_seconds))
    return out


def groups(found: list[Candidate]) -> dict[Group, list[Candidate]]:
    by_group: dict[Group, list[Candidate]] = {}
    for candidate in found:
        by_group.setdefault(candidate.group, []).append(candidate)
    return by_group


def over_limit(by_group: dict[Group, list[Candidate]], totals: dict[Group, int]) -> set[int]:
    """Batch positions past the limit. `totals` are the counts after this batch was added:
    the batch's own rows are the last ones counted, in batch (stream) order."""
    out: set[int] = set()
    for group, members in by_group.items():
        before = totals[group] - len(members)
        for position, candidate in enumerate(members, start=1):
            if before + position > candidate.limit:
                out.add(candidate.index)
    return out


def skipped(row: NewNotification) -> NewNotification:
    throttle = row.throttle
    assert throttle is not None
    message = (
        f"at most {throttle.limit} per {throttle.window_seconds:g}s for key {throttle.key!r} "
        "and this recipient"
    )
    return msgspec.structs.replace(
        row, status=Status.SKIPPED, error_code=THROTTLED, error_message=message, send_at=None
    )


async def apply(conn: asyncpg.Connection, rows: Sequence[NewNotification]) -> list[NewNotification]:
    """Decide the throttled rows of a batch; call inside the transaction that inserts them.
    Rows over their limit come back `skipped` / `throttled`, the rest unchanged."""
    keys = [r.idempotency_key for r in rows if r.throttle is not None]
    if not keys:
        return list(rows)
    await conn.fetchval(_LOCK, keys, _LOCK_SEED)
    stored = frozenset(r["idempotency_key"] for r in await conn.fetch(_STORED, keys))
    by_group = groups(candidates(rows, stored))
    if not by_group:
        return list(rows)
    first = {group: members[0] for group, members in by_group.items()}
    returned = await conn.fetch(
        _COUNT,
        [g[0] for g in first],
        [g[1] for g in first],
        [g[2] for g in first],
        [c.window_seconds for c in first.values()],
        [len(by_group[g]) for g in first],
    )
    totals = {(r["rule"], r["key"], r["recipient"]): r["count"] for r in returned}
    over = over_limit(by_group, totals)
    return [skipped(row) if i in over else row for i, row in enumerate(rows)]


async def forget_expired(pool: asyncpg.Pool, *, limit: int) -> int:
    """Windows that ended hold no information: the next notification starts a new one."""
    result = await pool.execute(
        """DELETE FROM notification_throttles WHERE ctid IN (
               SELECT ctid FROM notification_throttles WHERE window_end < now() LIMIT $1)""",
        limit,
    )
    return int(result.split()[-1])
