"""The outcome store against real Postgres: idempotency, claims, dispatch and cancel races."""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from notify.cancellations import Cancel
from notify.globs import translate
from notify.migrations import migrate
from notify.store import Finished, OutcomeStore
from rules.routing import idempotency_key
from schemas import Channel, NewNotification, Status

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


@pytest_asyncio.fixture
async def store(database_url: str) -> AsyncIterator[OutcomeStore]:
    s = await OutcomeStore.connect(database_url, min_size=2, max_size=6)
    yield s
    await s.close()


def note(
    event: str,
    *,
    status: Status = Status.PENDING,
    send_at: datetime | None = None,
    subject: str | None = None,
    cancel_on: list[str] | None = None,
    event_time: datetime | None = None,
) -> NewNotification:
    return NewNotification(
        idempotency_key=idempotency_key(event, "r", "+14155550100"),
        event_id=event,
        event_type="shipment.delayed",
        event_subject=subject,
        rule="r",
        channel=Channel.SMS,
        recipient="+14155550100",
        body="hello",
        status=status,
        send_at=send_at,
        cancel_on=cancel_on or [],
        event_time=event_time,
    )


def cancel(event: str, event_type: str, subject: str) -> Cancel:
    return Cancel(event, event_type, subject, datetime.now(UTC))


async def test_migrate_is_idempotent_and_safe_concurrently(database_url: str) -> None:
    conns = [await asyncpg.connect(database_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
    finally:
        for c in conns:
            await c.close()
    assert results == [[], [], []]  # the session fixture already migrated; nothing to redo


async def test_insert_is_idempotent_per_key(store: OutcomeStore) -> None:
    event = f"e-{uuid.uuid4()}"
    first = await store.insert([note(event)])
    again = await store.insert([note(event)])
    assert len(first.to_publish) == 1 and first.duplicates == 0
    assert again.to_publish == [] and again.duplicates == 1
    redelivered = await store.insert([note(event)], frozenset({note(event).idempotency_key}))
    assert redelivered.to_publish == first.to_publish  # still pending: publish again


async def test_only_one_of_many_concurrent_claims_wins(store: OutcomeStore) -> None:
    inserted = await store.insert([note(f"e-{uuid.uuid4()}")])
    nid = inserted.to_publish[0][0]
    claims = await asyncio.gather(*(store.claim(nid) for _ in range(6)))
    winners = [c for c in claims if c is not None]
    assert len(winners) == 1 and winners[0].status == Status.SENDING and winners[0].attempts == 1
    winner = winners[0]
    await store.finish_many([Finished(winner.id, winner.attempts, "sent", "sent", None, "SM1")])
    assert await store.claim(nid) is None  # a duplicate task after `sent` does nothing


async def test_dispatch_moves_due_rows_once_and_expires_stale_ones(store: OutcomeStore) -> None:
    now = datetime.now(UTC)
    tag = uuid.uuid4().hex
    rows = [
        note(f"due-{tag}", status=Status.SCHEDULED, send_at=now - timedelta(seconds=5)),
        note(f"future-{tag}", status=Status.SCHEDULED, send_at=now + timedelta(hours=1)),
        note(f"stale-{tag}", status=Status.SCHEDULED, send_at=now - timedelta(hours=3)),
    ]
    inserted = await store.insert(rows)
    assert inserted.to_publish == []  # scheduled rows get no task at insert time
    # Two dispatchers at once (two beats): SKIP LOCKED gives each row to exactly one of them.
    a, b = await asyncio.gather(
        store.dispatch_due(now=now, stale_seconds=3600, limit=100),
        store.dispatch_due(now=now, stale_seconds=3600, limit=100),
    )
    ours = [r for r in a + b if r[0] in await _ids(store, tag)]
    statuses = sorted(status for _, _, status in ours)
    assert statuses == ["failed", "pending"]
    assert len({r[0] for r in ours}) == 2
    later = await store.dispatch_due(now=now + timedelta(hours=2), stale_seconds=7200, limit=100)
    assert [r for r in later if r[0] in await _ids(store, tag)] != []


async def _ids(store: OutcomeStore, tag: str) -> set[int]:
    records = await store.pool.fetch(
        "SELECT id FROM notifications WHERE event_id LIKE $1", f"%{tag}"
    )
    return {r["id"] for r in records}


async def test_cancel_matches_subject_and_the_rows_own_cancel_on(store: OutcomeStore) -> None:
    tag = uuid.uuid4().hex
    later = datetime.now(UTC) + timedelta(hours=1)
    await store.insert(
        [
            note(
                f"a-{tag}",
                status=Status.SCHEDULED,
                send_at=later,
                subject=f"S1-{tag}",
                cancel_on=["shipment.delivered", "shipment.cancel*"],
            ),
            note(
                f"b-{tag}",
                status=Status.SCHEDULED,
                send_at=later,
                subject=f"S2-{tag}",
                cancel_on=["shipment.delivered"],
            ),
            note(f"c-{tag}", status=Status.SCHEDULED, send_at=later, subject=f"S1-{tag}"),
        ]
    )
    assert await store.cancel([cancel("x1", "shipment.delayed", f"S1-{tag}")], keep_seconds=0) == 0
    assert (
        await store.cancel([cancel("x2", "shipment.cancelled", f"S1-{tag}")], keep_seconds=0) == 1
    )
    records = await store.pool.fetch(
        "SELECT event_id, status, cancelled_by FROM notifications WHERE event_id LIKE $1"
        " ORDER BY event_id",
        f"%{tag}",
    )
    assert [(r["event_id"][0], r["status"], r["cancelled_by"]) for r in records] == [
        ("a", "cancelled", "x2"),
        ("b", "scheduled", None),
        ("c", "scheduled", None),
    ]


async def test_cancel_and_dispatch_race_safely(store: OutcomeStore) -> None:
    tag = uuid.uuid4().hex
    now = datetime.now(UTC)
    notes = [
        note(
            f"r{i}-{tag}",
            status=Status.SCHEDULED,
            send_at=now - timedelta(seconds=1),
            subject=f"S-{tag}",
            cancel_on=["shipment.delivered"],
        )
        for i in range(50)
    ]
    await store.insert(notes)
    _, cancelled = await asyncio.gather(
        store.dispatch_due(now=now, stale_seconds=3600, limit=1000),
        store.cancel([cancel("stop", "shipment.delivered", f"S-{tag}")], keep_seconds=0),
    )
    records = await store.pool.fetch(
        "SELECT status FROM notifications WHERE event_id LIKE $1", f"%{tag}"
    )
    statuses = [r["status"] for r in records]
    # Every row ended in exactly one of the two outcomes, never both, never neither.
    assert len(statuses) == 50 and set(statuses) <= {"pending", "cancelled"}
    assert statuses.count("cancelled") == cancelled


async def test_legacy_retention_deletes_only_old_finished_rows(store: OutcomeStore) -> None:
    """Rows older than the first day partition live in the legacy one, pruned by deletes
    (day partitions are dropped whole: tests/integration/test_history.py)."""
    tag = uuid.uuid4().hex
    old = datetime.now(UTC) - timedelta(days=100)
    olds = [note(f"old-{kind}-{tag}", event_time=old) for kind in ("sent", "pending")]
    await store.insert([*olds, note(f"new-{tag}")])
    await store.pool.execute(
        """UPDATE notifications SET created_at = now() - interval '100 days',
               status = CASE WHEN event_id LIKE 'old-sent-%' THEN 'sent' ELSE status END
           WHERE event_id IN ($1, $2)""",
        f"old-sent-{tag}", f"old-pending-{tag}",
    )  # fmt: skip
    deleted = await store.delete_older_than(days=90, limit=5000)
    left = {r["event_id"] for r in await store.pool.fetch(
        "SELECT event_id FROM notifications WHERE event_id LIKE $1", f"%{tag}")}  # fmt: skip
    assert deleted >= 1
    assert left == {f"old-pending-{tag}", f"new-{tag}"}  # unfinished rows are never purged


async def test_postgres_reads_every_glob_as_python_does(store: OutcomeStore) -> None:
    """cancel_on is matched in SQL and in routing: the two must agree on every pattern."""
    rng = random.Random(7)
    alphabet = "abc._-*?[]!"
    types = ["a", "b.c", "a.b.c", "a-b", "a_b", "c.a", "ab", "b", "a.", "abc.abc", "-", "_"]
    pairs = [
        ("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 7))), t)
        for _ in range(400)
        for t in [rng.choice(types)]
    ]
    pairs += [("a.[!b]*", "a.c"), ("a.[a-c]", "a.b"), ("[", "["), ("*.c", "b.c")]
    regexes = [translate(p) for p, _ in pairs]
    records = await store.pool.fetch(
        "SELECT t ~ r AS m FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(t, r, i)"
        " ORDER BY i",
        [t for _, t in pairs],
        regexes,
    )
    python = [re.match(r, t) is not None for r, (_, t) in zip(regexes, pairs, strict=True)]
    assert [r["m"] for r in records] == python
    assert any(python) and not all(python)
