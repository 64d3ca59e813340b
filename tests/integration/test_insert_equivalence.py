"""The store's JSON batch insert stores exactly what the insert from one array per column did.

`REFERENCE` is the statement and parameters the store used before (commit c6e1844). Both are
run on the same generated batch in a transaction that is rolled back, and every stored
column, and what RETURNING answered, must be the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import asyncpg
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notify import store
from notify.globs import translate
from schemas import Channel, NewNotification, PushId, Status

pytestmark = [pytest.mark.integration]

REFERENCE = """
INSERT INTO notifications (idempotency_key, event_id, event_type, event_subject, rule, channel,
    recipient, title, body, data, status, send_at, cancel_on, cancel_patterns, error_code,
    error_message, rules_version, event_time, push_id)
SELECT k, e, t, s, r, c, rc, ti, b, d::jsonb, st, sa,
    ARRAY(SELECT jsonb_array_elements_text(co::jsonb)),
    ARRAY(SELECT jsonb_array_elements_text(cp::jsonb)), ec, em, rv, et, pi
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::text[],
    $14::text[], $15::text[], $16::text[], $17::text[], $18::timestamptz[], $19::text[])
    AS u(k, e, t, s, r, c, rc, ti, b, d, st, sa, co, cp, ec, em, rv, et, pi)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id, channel, status, idempotency_key
"""
_json = msgspec.json.Encoder()


def reference_columns(rows: Sequence[NewNotification]) -> list[list[Any]]:
    cols: list[list[Any]] = [[] for _ in range(19)]
    for n in rows:
        values = (
            n.idempotency_key, n.event_id, n.event_type, n.event_subject, n.rule,
            n.channel.value, n.recipient, n.title, n.body,
            None if n.data is None else _json.encode(n.data).decode(), n.status.value,
            n.send_at, _json.encode(n.cancel_on).decode(),
            _json.encode([translate(p) for p in n.cancel_on]).decode(), n.error_code,
            n.error_message, n.rules_version, n.event_time,
            None if n.push_id is None else n.push_id.value,
        )  # fmt: skip
        for col, value in zip(cols, values, strict=True):
            col.append(value)
    return cols


texts = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=30
)
optional_texts = st.none() | texts
times = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda t: t.astimezone(timezone(timedelta(hours=-7, minutes=-30))))
globs = st.sampled_from(["shipment.delivered", "shipment.*", "order.[!x]?", "a-b_c.[0-9]*", "["])


@st.composite
def rows(draw: st.DrawFn) -> NewNotification:
    channel = draw(st.sampled_from(list(Channel)))
    return NewNotification(
        idempotency_key=draw(st.sampled_from(["k1", "k2", "k3", "k4", "k5", "k6"])),
        event_id=draw(texts.filter(bool)),
        event_type=draw(st.sampled_from(["shipment.delayed", "order.placed"])),
        event_subject=draw(optional_texts),
        rule=draw(st.sampled_from(["r", "delay-sms", "x.y_z"])),
        channel=channel,
        recipient=draw(texts),
        body=draw(texts),
        title=draw(optional_texts),
        data=draw(st.none() | st.dictionaries(texts, texts, max_size=3)),
        push_id=draw(st.sampled_from(list(PushId))) if channel is Channel.PUSH else None,
        status=draw(st.sampled_from([Status.PENDING, Status.SCHEDULED, Status.FAILED])),
        send_at=draw(st.none() | times),
        cancel_on=draw(st.lists(globs, max_size=3)),
        error_code=draw(optional_texts),
        error_message=draw(optional_texts),
        rules_version=draw(st.none() | st.just("0123456789ab")),
        event_time=draw(st.none() | times),
    )


async def stored(conn: asyncpg.Connection, sql: str, args: Sequence[Any]) -> tuple[Any, ...]:
    """What RETURNING answered and what the table holds, with the insert rolled back."""
    tx = conn.transaction()
    await tx.start()
    try:
        returned = await conn.fetch(sql, *args)
        table = await conn.fetch("SELECT * FROM notifications WHERE idempotency_key LIKE 'k_'")
    finally:
        await tx.rollback()
    ignore = {"id", "created_at", "updated_at"}
    answer = sorted((r["channel"], r["status"], r["idempotency_key"]) for r in returned)
    rows_ = sorted(
        (tuple((k, v) for k, v in dict(r).items() if k not in ignore) for r in table), key=repr
    )
    return answer, rows_


def run(database_url: str, batch: list[NewNotification]) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            expected = await stored(conn, REFERENCE, reference_columns(batch))
            got = await stored(conn, store._INSERT, store._insert_params(batch))
        finally:
            await conn.close()
        assert got == expected

    asyncio.run(go())


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(rows(), min_size=1, max_size=8))
def test_the_json_insert_stores_what_the_array_insert_stored(
    database_url: str, batch: list[NewNotification]
) -> None:
    run(database_url, batch)


def test_text_postgres_cannot_hold_fails_both_ways(database_url: str) -> None:
    """A NUL in a body: both statements refuse the batch (it is retried, then dead-lettered)."""
    bad = NewNotification(
        idempotency_key="k1", event_id="e", event_type="t", event_subject=None, rule="r",
        channel=Channel.SMS, recipient="+14155550100", body="a\x00b",
    )  # fmt: skip

    async def go() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            for sql, args in (
                (REFERENCE, reference_columns([bad])),
                (store._INSERT, store._insert_params([bad])),
            ):
                with pytest.raises(asyncpg.PostgresError):
                    await stored(conn, sql, args)
        finally:
            await conn.close()

    asyncio.run(go())
