"""Waiting for the sender's turn, with a fake limiter and store: no Redis, no sleeping."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from notify.settings import Settings
from schemas import Channel, Notification, Status, TaskResult
from tasks import pacing
from tasks.backlog import estimate
from tasks.delivery import deliver, deliver_many
from tasks.limiter import cost
from tasks.runtime import Runtime
from tasks.testing import FakeWorkerStore

SETTINGS = Settings(sms_segments_per_second=1.0, twilio_phone_number="+15005550006",
                    visibility_timeout_seconds=300, schedule_interval_seconds=5)  # fmt: skip


class FakeRate:
    """Answers each reservation with the next waits given; counts round trips."""

    def __init__(self, *waits: float, error: Exception | None = None) -> None:
        self.waits = list(waits)
        self.error = error
        self.calls: list[list[str]] = []

    def reserve(self, bodies: Sequence[str]) -> list[float]:
        self.calls.append(list(bodies))
        if self.error is not None:
            raise self.error
        taken, self.waits = self.waits[: len(bodies)], self.waits[len(bodies) :]
        return taken


class Provider:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, to: str, *rest: Any) -> str:
        self.sent.append(to)
        return f"SM{len(self.sent)}"


def row(nid: int, channel: Channel = Channel.SMS) -> Notification:
    return Notification(
        id=nid, idempotency_key=f"k{nid}", event_id="e", event_type="t", rule="r",
        channel=channel, recipient=f"+1415555{nid:04d}" if channel is Channel.SMS else "tok",
        body=f"hello {nid}", title=None, data=None, status=Status.SENDING, attempts=1,
        provider_message_id=None, error_code=None, send_at=None,
    )  # fmt: skip


@pytest.fixture
def naps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Where sender threads would have slept until (epoch seconds)."""
    seen: list[float] = []
    monkeypatch.setattr(pacing, "nap_until", seen.append)
    return seen


def runtime(store: FakeWorkerStore, rate: FakeRate | None, sms: Provider) -> Runtime:
    return Runtime(settings=SETTINGS, db=store, sms=sms, push=Provider(),  # type: ignore[arg-type]
                   pid=0, senders=ThreadPoolExecutor(4),
                   rates={"twilio": rate} if rate else {})  # type: ignore[dict-item]  # fmt: skip


def test_horizon_stays_below_the_visibility_timeout() -> None:
    assert pacing.horizon(SETTINGS) == 30.0
    assert pacing.horizon(Settings(visibility_timeout_seconds=20)) == 10.0


def test_split_goes_now_naps_or_waits_in_the_broker_or_in_postgres() -> None:
    rows = [row(1), row(2), row(3), row(4)]
    paced = pacing.split(rows, [100.0, 100.8, 110.0, 500.0], now=100.0, far=30.0)
    assert paced.ready == [(rows[0], 100.0), (rows[1], 100.8)]
    assert [(h.row.id, h.slot, h.countdown) for h in paced.held] == [
        (3, 110.0, 10.0), (4, 500.0, None),
    ]  # fmt: skip


def test_a_batch_sends_what_is_due_and_releases_the_rest_without_spending_attempts(
    naps: list[float],
) -> None:
    store = FakeWorkerStore({n: row(n) for n in (1, 2, 3, 4)})
    rate, sms = FakeRate(0.0, 0.5, 5.0, 100.0), Provider()
    before = time.time()
    results = dict(deliver_many(runtime(store, rate, sms), [1, 2, 3, 4], Channel.SMS))
    assert len(rate.calls) == 1  # one round trip for the whole batch
    assert sorted(sms.sent) == ["+14155550001", "+14155550002"]
    assert len(naps) == 2 and max(naps) >= before + 0.5
    assert (results[3].status, results[4].status) == (TaskResult.DEFERRED, TaskResult.DEFERRED)
    assert results[3].retry_in == 5.0 and results[3].slot is not None
    assert results[4].retry_in is None  # beyond the horizon: beat hands it out
    assert store.released[3] == (1, None)
    slot_at = store.released[4][1]
    assert slot_at is not None and slot_at >= datetime.fromtimestamp(before + 100, UTC)
    # Released rows are claimable again with the same attempt number: waiting cost nothing.
    assert {n: r.attempts for n, r in store.claimable.items()} == {3: 1, 4: 1}


def test_a_row_back_at_its_slot_is_sent_without_asking_the_limiter(naps: list[float]) -> None:
    store, rate, sms = FakeWorkerStore({7: row(7)}), FakeRate(), Provider()
    slot = time.time() + 0.2
    outcome = deliver(runtime(store, rate, sms), 7, Channel.SMS, slot)
    assert (outcome.status, rate.calls, sms.sent, naps) == (
        TaskResult.SENT, [], ["+14155550007"], [slot],
    )  # fmt: skip


def test_a_row_brought_back_early_waits_again_for_the_same_slot(naps: list[float]) -> None:
    store, rate, sms = FakeWorkerStore({7: row(7)}), FakeRate(), Provider()
    slot = time.time() + 20
    outcome = deliver(runtime(store, rate, sms), 7, Channel.SMS, slot)
    assert (outcome.status, outcome.slot, rate.calls, sms.sent) == (
        TaskResult.DEFERRED, slot, [], [],
    )  # fmt: skip
    assert outcome.retry_in is not None and 19 < outcome.retry_in <= 20


def test_push_and_unlimited_sms_never_wait(naps: list[float]) -> None:
    store = FakeWorkerStore({1: row(1, Channel.PUSH)})
    rate = FakeRate()
    assert deliver(runtime(store, rate, Provider()), 1, Channel.PUSH).status is TaskResult.SENT
    store = FakeWorkerStore({2: row(2)})
    assert deliver(runtime(store, None, Provider()), 2, Channel.SMS).status is TaskResult.SENT
    assert rate.calls == []


def test_redis_down_sends_nothing_and_retries_later(naps: list[float]) -> None:
    store, sms = FakeWorkerStore({1: row(1), 2: row(2)}), Provider()
    rate = FakeRate(error=redis.ConnectionError("refused"))
    results = dict(deliver_many(runtime(store, rate, sms), [1, 2], Channel.SMS))
    assert sms.sent == []
    assert {r.status for r in results.values()} == {TaskResult.DEFERRED}
    assert all(r.slot is None and r.retry_in is not None for r in results.values())
    assert store.released == {1: (1, None), 2: (1, None)}


def test_segments_are_what_a_message_costs() -> None:
    assert cost("hi") == 1
    assert cost("x" * 161) == 2  # GSM-7: 153 per part once split
    assert cost("é" * 10 + "€") == 1
    assert cost("😀" * 40) == 2  # UCS-2: two units per emoji, 67 per part
    assert cost("") == 1


def test_the_backlog_estimate_reads_a_sample_when_the_queue_is_large() -> None:
    assert estimate(0, []) == 0.0
    assert estimate(2, ["hi", "x" * 161]) == 3.0  # every body read: exact
    assert estimate(1000, ["hi", "x" * 161]) == 1500.0  # 1.5 segments a message
