"""Cancellation decided by event time, whichever consumer handles which event, in either order
(CONTRACT section 10): real consumers sharing one group, real Postgres, exact counts."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import redis

from notify.cancellations import Cancel
from notify.store import OutcomeStore
from rules.routing import idempotency_key
from schemas import Channel, NewNotification, Status
from tests.integration import processes
from tests.integration.helpers import fetch, wait_for_rows

pytestmark = pytest.mark.integration
# Every event id (and subject) here starts with it: the rows go with the test.
TAG = f"cx{uuid.uuid4().hex[:6]}-"

REMINDER = """
rules:
  - name: eta-reminder
    on: shipment.delayed
    channel: sms
    to: "{{ data.phone }}"
    body: "Your parcel arrives soon."
    delay: 1h
    cancel_on: shipment.delivered
"""


@pytest.fixture(autouse=True)
def forget_rows(database_url: str) -> Iterator[None]:
    """Scheduled rows left behind would be a later test's due reminders."""
    yield
    fetch(database_url, "DELETE FROM notifications WHERE event_id LIKE $1", f"{TAG}%")
    fetch(database_url, "DELETE FROM cancellations WHERE event_id LIKE $1", f"{TAG}%")


def entry(event_id: str, event_type: str, subject: str, when: datetime | None = None) -> Any:
    fields = {"id": event_id, "type": event_type, "subject": f"{TAG}/{subject}"}
    fields["data"] = json.dumps({"phone": "+14155550100"})
    if when is not None:
        fields["time"] = when.isoformat()
    return fields


def facts(database_url: str, prefix: str) -> list[dict[str, Any]]:
    sql = "SELECT * FROM cancellations WHERE event_id LIKE $1 ORDER BY created_at"
    return fetch(database_url, sql, f"{prefix}%")


def check_outcomes(rows: list[dict[str, Any]], prefix: str, cancelled: int, kept: int) -> None:
    """`cancelled` rows cancelled each by its own subject's stop event; `kept` scheduled."""
    statuses = Counter(r["status"] for r in rows)
    assert statuses == +Counter(cancelled=cancelled, scheduled=kept), statuses
    for r in rows:
        if r["status"] == "cancelled":
            number = r["event_subject"].rsplit("/", 1)[-1]
            assert r["cancelled_by"] == f"{prefix}-stop-{number}", r
        else:
            assert r["cancelled_by"] is None, r


def test_three_consumers_interleaved_cancels_none_escape(
    pipeline_env: dict[str, str],
    rules_file: Any,
    procs: processes.Start,
    redis_client: redis.Redis,
    tmp_path: Path,
    database_url: str,
) -> None:
    """Each cancel is 11 entries after its reminder's event, batches of 10, three consumers:
    every reminder is cancelled, by its own cancel. Subjects whose cancel is *older* than
    their reminder's event (published after it) keep their reminder."""
    rules_file(REMINDER)
    env = {**pipeline_env, "NOTIFY_BATCH_SIZE": "10", "NOTIFY_BATCH_LINGER_MS": "0"}
    stream, prefix = env["NOTIFY_STREAM"], f"{TAG}tri"
    cancelled, newer = 1500, 150
    now = datetime.now(UTC)
    order: list[Any] = []
    for i in range(cancelled + 6):
        if i < cancelled:
            order.append(entry(f"{prefix}-{i}", "shipment.delayed", str(i)))
        if i >= 6:
            j = i - 6
            order.append(entry(f"{prefix}-stop-{j}", "shipment.delivered", str(j)))
    for i in range(cancelled, cancelled + newer):  # the cancel happened before the event
        order.append(entry(f"{prefix}-{i}", "shipment.delayed", str(i), now))
        stop = entry(f"{prefix}-stop-{i}", "shipment.delivered", str(i), now - timedelta(minutes=1))
        order.append(stop)
    consumers = [procs(processes.consumer(env, tmp_path, f"consumer-{n}")) for n in range(3)]
    for c in consumers:
        c.wait_for_log("consumer started")
    pipe = redis_client.pipeline(transaction=False)
    for fields in order:
        pipe.xadd(stream, fields)
    pipe.execute()
    found = wait_for_rows(
        database_url, f"{prefix}-%", cancelled + newer, {"scheduled", "cancelled"}, timeout=120
    )
    processes.wait_until(
        lambda: (
            redis_client.xpending(stream, "notifications")["pending"] == 0
            and len(facts(database_url, f"{prefix}-stop-")) == cancelled + newer
        ),
        timeout=60,
        message="every entry acknowledged, every cancel recorded",
    )
    found = fetch(database_url, "SELECT * FROM notifications WHERE event_id LIKE $1", f"{prefix}-%")
    check_outcomes(found, prefix, cancelled, newer)


def test_cancel_first_then_reminder_in_another_batch(
    start_pipeline: processes.StartPipeline, redis_client: redis.Redis, database_url: str
) -> None:
    """The cancel is handled (and acknowledged) before the reminder's event arrives: the
    reminder is born cancelled, naming it; one from an event newer than the cancel is not."""
    env = start_pipeline(REMINDER).env
    stream, prefix = env["NOTIFY_STREAM"], f"{TAG}first"
    now = datetime.now(UTC)
    redis_client.xadd(stream, entry(f"{prefix}-stop-old", "shipment.delivered", "old", now))
    redis_client.xadd(stream, entry(f"{prefix}-stop-new", "shipment.delivered", "new", now))
    processes.wait_until(
        lambda: len(facts(database_url, f"{prefix}-stop-")) == 2,
        timeout=30,
        message="both cancels recorded",
    )
    earlier, later = now - timedelta(minutes=1), now + timedelta(minutes=1)
    redis_client.xadd(stream, entry(f"{prefix}-a", "shipment.delayed", "old", earlier))
    redis_client.xadd(stream, entry(f"{prefix}-b", "shipment.delayed", "new", later))
    found = wait_for_rows(database_url, f"{prefix}-%", 2, {"scheduled", "cancelled"})
    assert [(r["event_id"], r["status"], r["cancelled_by"]) for r in found] == [
        (f"{prefix}-a", "cancelled", f"{prefix}-stop-old"),
        (f"{prefix}-b", "scheduled", None),
    ]


def test_a_dead_consumers_entries_claimed_after_the_cancel_are_cancelled(
    pipeline_env: dict[str, str],
    rules_file: Any,
    procs: processes.Start,
    redis_client: redis.Redis,
    tmp_path: Path,
    database_url: str,
) -> None:
    """A consumer read 100 reminder events and died; the cancels come next and are handled at
    once; the dead consumer's entries are claimed after NOTIFY_CLAIM_IDLE_SECONDS."""
    rules_file(REMINDER)
    env = {**pipeline_env, "NOTIFY_CLAIM_IDLE_SECONDS": "5"}
    stream, prefix, count = env["NOTIFY_STREAM"], f"{TAG}dead", 100
    live = procs(processes.consumer(env, tmp_path))
    live.wait_for_log("consumer started")
    # One transaction: the live consumer cannot read the reminders before the dead one has.
    pipe = redis_client.pipeline(transaction=True)
    for i in range(count):
        pipe.xadd(stream, entry(f"{prefix}-{i}", "shipment.delayed", str(i)))
    pipe.xreadgroup("notifications", "dead", {stream: ">"}, count=count)
    for i in range(count):
        pipe.xadd(stream, entry(f"{prefix}-stop-{i}", "shipment.delivered", str(i)))
    pipe.execute()
    found = wait_for_rows(database_url, f"{prefix}-%", count, {"scheduled", "cancelled"})
    check_outcomes(found, prefix, count, 0)
    recorded = facts(database_url, f"{prefix}-stop-")
    assert len(recorded) == count
    # The order this test is about: every cancel was known before any reminder was written.
    assert max(f["created_at"] for f in recorded) < min(r["created_at"] for r in found)


# The store on its own: many concurrent inserts and cancels on a small pool, random order.


@pytest_asyncio.fixture
async def store(database_url: str) -> AsyncIterator[OutcomeStore]:
    s = await OutcomeStore.connect(database_url, min_size=8, max_size=8)
    yield s
    await s.close()


def reminder(event_id: str, subject: str, when: datetime) -> NewNotification:
    return NewNotification(
        idempotency_key=idempotency_key(event_id, "eta", "+14155550100"),
        event_id=event_id,
        event_type="shipment.delayed",
        event_subject=subject,
        rule="eta",
        channel=Channel.SMS,
        recipient="+14155550100",
        body="soon",
        status=Status.SCHEDULED,
        send_at=when + timedelta(hours=1),
        cancel_on=["shipment.delivered"],
        event_time=when,
    )


@pytest.mark.asyncio
async def test_concurrent_inserts_and_cancels_never_miss_each_other(store: OutcomeStore) -> None:
    """Each subject's insert and cancel run at the same moment on different connections,
    in random order, over many rounds; half the cancels are older than their reminder."""
    prefix, rounds, width = f"{TAG}race", 40, 8
    now = datetime.now(UTC)
    expected: dict[str, str | None] = {}
    for r in range(rounds):
        calls = []
        for w in range(width):
            subject = f"{prefix}-{r}-{w}"
            older = w % 2 == 0
            stop = Cancel(f"{subject}-stop", "shipment.delivered", subject,
                          now - timedelta(minutes=1) if older else now)  # fmt: skip
            expected[subject] = None if older else stop.event_id
            calls.append(store.insert([reminder(f"{subject}-ev", subject, now)]))
            calls.append(store.cancel([stop], keep_seconds=3600))
        random.shuffle(calls)
        await asyncio.gather(*calls)
    records = await store.pool.fetch(
        "SELECT event_subject, status, cancelled_by FROM notifications WHERE event_subject LIKE $1",
        f"{prefix}-%",
    )
    got = {r["event_subject"]: r["cancelled_by"] for r in records}
    assert got == expected
    assert all((r["status"] == "cancelled") == (r["cancelled_by"] is not None) for r in records)


@pytest.mark.asyncio
async def test_facts_are_kept_for_their_window_then_purged(store: OutcomeStore) -> None:
    prefix = f"{TAG}keep"
    now = datetime.now(UTC)
    await store.cancel(
        [
            Cancel(f"{prefix}-short", "shipment.delivered", prefix, now - timedelta(hours=2)),
            Cancel(f"{prefix}-long", "shipment.delivered", prefix, now),
        ],
        keep_seconds=3600,
    )
    kept = await store.pool.fetch(
        "SELECT event_id FROM cancellations WHERE subject = $1", prefix
    )  # the two-hour-old one is past its window already: nothing earlier can still come
    assert [r["event_id"] for r in kept] == [f"{prefix}-long"]
    await store.pool.execute(
        "UPDATE cancellations SET keep_until = now() - interval '1 s' WHERE subject = $1", prefix
    )
    assert await store.forget_cancellations(limit=100_000) >= 1
    assert (
        await store.pool.fetchval("SELECT count(*) FROM cancellations WHERE subject = $1", prefix)
        == 0
    )
