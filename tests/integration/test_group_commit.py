"""Workers record finished attempts through one group-commit writer per process."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import pytest

from notify.store import Finished, OutcomeStore
from rules.routing import idempotency_key
from schemas import AttemptOutcome, Channel, NewNotification, Notification, Resolution, Status
from tasks.db import StoreRunner

pytestmark = pytest.mark.integration


@pytest.fixture
def runner(database_url: str) -> Iterator[StoreRunner]:
    r = StoreRunner(database_url, max_size=4)
    yield r
    r.close()


def claimed(runner: StoreRunner, count: int) -> list[Notification]:
    tag = uuid.uuid4().hex
    rows = [
        NewNotification(
            idempotency_key=idempotency_key(f"gc-{tag}-{n}", "r", "+14155550100"),
            event_id=f"gc-{tag}-{n}", event_type="shipment.delayed", event_subject=None,
            rule="r", channel=Channel.SMS, recipient="+14155550100", body=f"hello {n}",
        )
        for n in range(count)
    ]  # fmt: skip

    async def insert_and_claim(store: OutcomeStore) -> list[Notification]:
        inserted = await store.insert(rows)
        return await store.claim_many([nid for nid, _ in inserted.to_publish])

    return runner.run(insert_and_claim)


def outcome(row: Notification) -> Finished:
    if row.id % 3:
        return Finished(row.id, row.attempts, "sent", "sent", provider_message_id=f"SM{row.id}")
    return Finished(
        row.id, row.attempts, "failed", "permanent_error", error_code="21211", error_message="no"
    )


async def stored(database_url: str, ids: list[int]) -> dict[int, tuple[str, str | None, str]]:
    conn = await asyncpg.connect(database_url)
    try:
        records = await conn.fetch(
            """SELECT n.id, n.status, n.provider_message_id, a.outcome
               FROM notifications n JOIN notification_attempts a ON a.notification_id = n.id
               WHERE n.id = ANY($1::bigint[]) AND a.finished_at IS NOT NULL""",
            ids,
        )
    finally:
        await conn.close()
    return {r["id"]: (r["status"], r["provider_message_id"], r["outcome"]) for r in records}


def test_concurrent_outcomes_are_written_together_and_each_caller_waits_for_its_own(
    runner: StoreRunner, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = claimed(runner, 120)
    calls: list[int] = []
    first_write_started = threading.Event()
    real = OutcomeStore.finish_many

    async def slow_first(self: OutcomeStore, finished: Sequence[Finished]) -> None:
        calls.append(len(finished))
        if len(calls) == 1:
            first_write_started.set()
            await asyncio.sleep(0.3)  # everything recorded meanwhile queues behind this write
        await real(self, finished)

    monkeypatch.setattr(OutcomeStore, "finish_many", slow_first)
    with ThreadPoolExecutor(len(rows)) as pool:
        first = pool.submit(runner.record, outcome(rows[0]))
        assert first_write_started.wait(10)
        list(pool.map(runner.record, [outcome(r) for r in rows[1:]]))
        first.result()
    assert calls[0] == 1 and sum(calls) == 120
    assert len(calls) <= 3  # the other 119 went out together, not one statement each
    expected = {
        r.id: ("sent", f"SM{r.id}", "sent") if r.id % 3 else ("failed", None, "permanent_error")
        for r in rows
    }
    assert asyncio.run(stored(database_url, [r.id for r in rows])) == expected


def test_a_failed_write_fails_every_caller_in_it_and_a_retry_records(
    runner: StoreRunner, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = claimed(runner, 3)
    real = OutcomeStore.finish_many
    failures = [ConnectionResetError("postgres went away")]

    async def flaky(self: OutcomeStore, finished: Sequence[Finished]) -> None:
        if failures:
            raise failures.pop()
        await real(self, finished)

    monkeypatch.setattr(OutcomeStore, "finish_many", flaky)
    with pytest.raises(ConnectionResetError):
        runner.record(outcome(rows[0]))
    assert asyncio.run(stored(database_url, [rows[0].id])) == {}  # nothing half-written
    for row in rows:
        runner.record(outcome(row))
    assert len(asyncio.run(stored(database_url, [r.id for r in rows]))) == 3


def test_a_row_the_sweeper_settled_first_keeps_its_status(
    runner: StoreRunner, database_url: str
) -> None:
    [row] = claimed(runner, 1)
    settled = runner.run(
        lambda store: store.resolve_sending(
            row,
            Resolution(
                status=Status.SENT, outcome=AttemptOutcome.SENT, provider_message_id="SMswept"
            ),
        )
    )
    assert settled
    runner.record(Finished(row.id, row.attempts, "failed", "transient_error", error_code="20429"))
    status, provider_id, _ = asyncio.run(stored(database_url, [row.id]))[row.id]
    assert (status, provider_id) == ("sent", "SMswept")
