"""The JSON insert (notify/inserts.py) stores exactly what the per-column insert it replaced
stored: every column, every returned status and error code, ids in batch order.

The per-column statement is kept here as the reference (the slow path). Both run on the
same generated batches (awkward text, nested quotes and braces, globs, time zones, repeated
keys, suppressed recipients), each on its own copy (keys prefixed apart).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notify import documents, partitions, statements
from notify.globs import translate
from schemas import SUPPRESSED, Channel, NewNotification, PushId, Status, sql_list
from tests.profiles import examples

pytestmark = [pytest.mark.integration]

_json = msgspec.json.Encoder()

# The insert before notify/inserts.py: one array per column, lists as JSON text.
REFERENCE = f"""
INSERT INTO notifications (idempotency_key, event_id, event_type, event_subject, rule, channel,
    recipient, title, body, data, status, send_at, cancel_on, cancel_patterns, error_code,
    error_message, rules_version, event_time, push_id)
SELECT k, e, t, s, r, c, rc, ti, b, d::jsonb,
    CASE WHEN sp.reason IS NULL THEN st ELSE {statements.SKIPPED} END, sa,
    ARRAY(SELECT jsonb_array_elements_text(co::jsonb)),
    ARRAY(SELECT jsonb_array_elements_text(cp::jsonb)),
    CASE WHEN sp.reason IS NULL THEN ec ELSE '{SUPPRESSED}' END,
    CASE WHEN sp.reason IS NULL THEN em ELSE 'recipient suppressed: ' || sp.reason END, rv, et, pi
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::text[],
    $14::text[], $15::text[], $16::text[], $17::text[], $18::timestamptz[], $19::text[])
    WITH ORDINALITY AS u(k, e, t, s, r, c, rc, ti, b, d, st, sa, co, cp, ec, em, rv, et, pi, n)
LEFT JOIN suppressions sp ON sp.channel = u.c AND sp.recipient = u.rc
    AND u.st IN {sql_list({Status.PENDING, Status.SCHEDULED})}
ORDER BY u.n
ON CONFLICT DO NOTHING
RETURNING id, channel, status, idempotency_key, error_code
"""


def columns(rows: list[NewNotification]) -> list[list[Any]]:
    cols: list[list[Any]] = [[] for _ in range(19)]
    for n in rows:
        values = (
            n.idempotency_key, n.event_id, n.event_type, n.event_subject, n.rule,
            n.channel.value, n.recipient, n.title, n.body,
            None if n.data is None else _json.encode(n.data).decode(),
            n.status.value, n.send_at, _json.encode(n.cancel_on).decode(),
            _json.encode([translate(p) for p in n.cancel_on]).decode(),
            n.error_code, n.error_message, n.rules_version, n.event_time,
            None if n.push_id is None else n.push_id.value,
        )  # fmt: skip
        for col, value in zip(cols, values, strict=True):
            col.append(value)
    return cols


# Text Postgres accepts (no NUL, no lone surrogates), with the characters JSON, array
# literals and globs treat specially.
TEXT = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")
    | st.sampled_from(list("\"\\{},*?[]!\n\t'é日🚚")),
    max_size=12,
)
MAYBE = st.none() | TEXT
RECIPIENTS = ["+14155550100", "+14155550101", "tok-a", "tok-b"]
ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
)
TIMES = st.none() | st.builds(
    lambda seconds, tz: (
        datetime(2026, 1, 1, tzinfo=UTC).astimezone(tz) + timedelta(microseconds=seconds)
    ),
    st.integers(0, 10**14),
    ZONES,
)

# Event times pick partitions: within the days a new database has (yesterday to a week on).
EVENT_TIMES = st.none() | st.builds(
    lambda seconds, tz: (datetime.now(UTC) + timedelta(microseconds=seconds)).astimezone(tz),
    st.integers(-(10**10), 5 * 86400 * 10**6),
    ZONES,
)


def in_sequence(record: Any) -> int:
    """Stream order: the sequence part of an id (its day part follows the event's time)."""
    return int(record["id"]) % partitions.DAY_SPAN


@st.composite
def notifications(draw: st.DrawFn) -> NewNotification:
    channel = draw(st.sampled_from(list(Channel)))
    return NewNotification(
        idempotency_key=draw(st.sampled_from(["k1", "k2", "k3", "k4", "k5"])),
        event_id=draw(TEXT),
        event_type=draw(TEXT),
        event_subject=draw(MAYBE),
        rule=draw(TEXT),
        channel=channel,
        recipient=draw(st.sampled_from(RECIPIENTS)),
        body=draw(TEXT),
        title=draw(MAYBE),
        data=draw(st.none() | st.dictionaries(TEXT, TEXT, max_size=3)),
        push_id=draw(st.none() | st.sampled_from(list(PushId)))
        if channel is Channel.PUSH
        else None,
        status=draw(st.sampled_from([Status.PENDING, Status.SCHEDULED, Status.FAILED])),
        send_at=draw(TIMES),
        cancel_on=draw(st.lists(TEXT, max_size=3)),
        error_code=draw(MAYBE),
        error_message=draw(MAYBE),
        rules_version=draw(MAYBE),
        event_time=draw(EVENT_TIMES),
    )


async def stored(conn: asyncpg.Connection, prefix: str) -> list[dict[str, Any]]:
    records = await conn.fetch(
        "SELECT * FROM notifications WHERE idempotency_key LIKE $1 || '%'", prefix
    )
    records = sorted(records, key=in_sequence)
    out = []
    for r in records:
        row = dict(r)
        for generated in ("id", "created_at", "updated_at"):
            del row[generated]
        row["idempotency_key"] = row["idempotency_key"].removeprefix(prefix)
        out.append(row)
    return out


async def both_ways(url: str, batch: list[NewNotification], suppressed: list[str]) -> None:
    # A key is one event's: its rows share the event's time, as routing makes them.
    times: dict[str, datetime | None] = {}
    for n in batch:
        times.setdefault(n.idempotency_key, n.event_time)
    batch = [msgspec.structs.replace(n, event_time=times[n.idempotency_key]) for n in batch]
    conn = await asyncpg.connect(url)
    try:
        await conn.executemany(
            "INSERT INTO suppressions (channel, recipient, reason, source) VALUES ($1, $2, "
            "'manual', 'test') ON CONFLICT DO NOTHING",
            [(c.value, r) for c in Channel for r in suppressed],
        )
        results = []
        for way in ("reference", "json"):
            prefix = f"{way}-{uuid.uuid4().hex[:8]}-"
            rows = [
                msgspec.structs.replace(n, idempotency_key=prefix + n.idempotency_key)
                for n in batch
            ]
            if way == "reference":
                returned = await conn.fetch(REFERENCE, *columns(rows))
            else:
                returned = await conn.fetch(statements.INSERT, documents.document(rows).decode())
            answer = [
                (
                    r["idempotency_key"].removeprefix(prefix),
                    r["channel"],
                    r["status"],
                    r["error_code"],
                )
                for r in sorted(returned, key=in_sequence)
            ]
            results.append((answer, await stored(conn, prefix)))
        assert results[0] == results[1]
    finally:
        await conn.execute("DELETE FROM suppressions WHERE source = 'test'")
        await conn.close()


@settings(
    max_examples=examples(150),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    batch=st.lists(notifications(), min_size=1, max_size=8),
    suppressed=st.lists(st.sampled_from(RECIPIENTS), max_size=2),
)
def test_json_insert_stores_what_the_per_column_insert_stored(
    database_url: str, batch: list[NewNotification], suppressed: list[str]
) -> None:
    asyncio.run(both_ways(database_url, batch, suppressed))
