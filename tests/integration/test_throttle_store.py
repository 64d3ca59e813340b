"""Throttles against real Postgres: concurrent consumers, redelivery, windows that end."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from notify.store import OutcomeStore
from rules.routing import idempotency_key
from schemas import Channel, NewNotification, Status, ThrottleKey

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


@pytest_asyncio.fixture
async def stores(database_url: str) -> AsyncIterator[list[OutcomeStore]]:
    """Two stores with pools of their own: two consumers."""
    made = [await OutcomeStore.connect(database_url, min_size=1, max_size=4) for _ in range(2)]
    yield made
    for s in made:
        await s.close()


def throttled(event: str, key: str, limit: int = 1, rule: str = "late") -> NewNotification:
    recipient = "+14155550100"
    return NewNotification(
        idempotency_key=idempotency_key(event, rule, recipient),
        event_id=event, event_type="shipment.delayed", event_subject=key, rule=rule,
        channel=Channel.SMS, recipient=recipient, body="late",
        throttle=ThrottleKey(key=key, limit=limit, window_seconds=1800),
    )  # fmt: skip


async def statuses(store: OutcomeStore, key: str) -> list[tuple[str, str | None]]:
    records = await store.pool.fetch(
        "SELECT status, error_code FROM notifications WHERE event_subject = $1 ORDER BY id", key
    )
    return [(r["status"], r["error_code"]) for r in records]


async def test_two_consumers_at_once_send_one_per_key(stores: list[OutcomeStore]) -> None:
    key = f"SHP-{uuid.uuid4().hex[:8]}"
    for _ in range(5):  # several rounds: the race is real only if both run at once
        events = [f"{key}-{uuid.uuid4().hex[:6]}" for _ in range(6)]
        batches = [[throttled(e, key) for e in events[:3]], [throttled(e, key) for e in events[3:]]]
        await asyncio.gather(*(s.insert(b) for s, b in zip(stores, batches, strict=True)))
    found = await statuses(stores[0], key)
    assert len(found) == 30
    assert found.count(("pending", None)) == 1
    assert found.count(("skipped", "throttled")) == 29


async def test_the_same_event_from_two_consumers_counts_once(
    stores: list[OutcomeStore],
) -> None:
    key = f"SHP-{uuid.uuid4().hex[:8]}"
    first, second = throttled(f"{key}-a", key, limit=2), throttled(f"{key}-b", key, limit=2)
    # Both consumers hold the same event (a producer published its id twice); only one row
    # exists afterwards, and it used one of the two places in the window.
    await asyncio.gather(*(s.insert([first]) for s in stores))
    inserted = await stores[0].insert([second])
    assert inserted.inserted_keys == {second.idempotency_key}
    assert await statuses(stores[0], key) == [("pending", None), ("pending", None)]


async def test_a_redelivered_batch_changes_nothing(stores: list[OutcomeStore]) -> None:
    key = f"SHP-{uuid.uuid4().hex[:8]}"
    batch = [throttled(f"{key}-{n}", key) for n in range(3)]
    await stores[0].insert(batch)
    again = await stores[0].insert(batch, frozenset(r.idempotency_key for r in batch))
    assert again.inserted_keys == set()
    assert await statuses(stores[0], key) == [("pending", None)] + [("skipped", "throttled")] * 2
    count = await stores[0].pool.fetchval(
        "SELECT count FROM notification_throttles WHERE key = $1", key
    )
    assert count == 3


async def test_after_the_window_the_next_one_goes_again(stores: list[OutcomeStore]) -> None:
    key = f"SHP-{uuid.uuid4().hex[:8]}"
    store = stores[0]
    await store.insert([throttled(f"{key}-1", key), throttled(f"{key}-2", key)])
    await store.pool.execute(
        "UPDATE notification_throttles SET window_end = now() - interval '1 s' WHERE key = $1", key
    )
    await store.insert([throttled(f"{key}-3", key), throttled(f"{key}-4", key)])
    assert [s for s, _ in await statuses(store, key)] == [
        Status.PENDING, Status.SKIPPED, Status.PENDING, Status.SKIPPED,
    ]  # fmt: skip


async def test_ended_windows_are_forgotten(stores: list[OutcomeStore]) -> None:
    key = f"SHP-{uuid.uuid4().hex[:8]}"
    store = stores[0]
    await store.insert([throttled(f"{key}-1", key)])
    await store.pool.execute(
        "UPDATE notification_throttles SET window_end = now() - interval '1 s' WHERE key = $1", key
    )
    assert await store.forget_expired_throttles(limit=100_000) >= 1
    left = "SELECT count(*) FROM notification_throttles WHERE key = $1"
    assert await store.pool.fetchval(left, key) == 0
