"""The send-rate limiter's script against real Redis: slots, segments, one shared schedule."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import pytest
import redis

from tasks.limiter import SendRate
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.integration


@pytest.fixture
def sender(redis_client: redis.Redis) -> Iterator[str]:
    name = f"+1500555{uuid.uuid4().int % 10_000:04d}-{uuid.uuid4().hex[:6]}"
    yield name
    redis_client.delete(f"notify:send-rate:{name}")


def test_slots_are_spaced_by_each_messages_segments(redis_client: redis.Redis, sender: str) -> None:
    rate = SendRate(redis_client, sender, segments_per_second=10)
    one, two = "x" * 100, "x" * 200  # 1 and 2 GSM-7 segments
    waits = rate.reserve([one, two, one, one])
    # Reserved back to back: 0, then +0.1 s (one segment), +0.2 s (two), +0.1 s.
    gaps = [round(b - a, 3) for a, b in pairwise(waits)]
    assert waits[0] < 0.01
    assert gaps == [0.1, 0.2, 0.1]
    assert rate.round_trips == 1


def test_an_idle_sender_starts_at_once_and_the_key_expires(
    redis_client: redis.Redis, sender: str
) -> None:
    rate = SendRate(redis_client, sender, segments_per_second=1000)
    assert rate.reserve(["hi"]) == [pytest.approx(0, abs=0.01)]
    ttl = redis_client.pttl(rate.key)
    assert 0 < ttl <= 1001  # kept only while it holds a future slot (plus a second)


def test_concurrent_clients_share_one_schedule(redis_client: redis.Redis, sender: str) -> None:
    """200 reservations from 4 clients on 8 threads: none lost, none shared."""
    clients = [redis.Redis.from_url(REDIS_URL) for _ in range(4)]
    seconds, micros = redis_client.time()
    started = seconds * 1_000_000 + micros
    try:
        rates = [SendRate(c, sender, segments_per_second=100) for c in clients]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda n: rates[n % 4].reserve(["hi"] * 5), range(40)))
    finally:
        for c in clients:
            c.close()
    # Each reservation moved the sender's next free time on by exactly one 10 ms slot: a
    # lost update (two clients reading the same time) would leave it short of 2 s.
    ahead = (int(redis_client.get(rates[0].key) or 0) - started) / 1_000_000
    assert 2.0 <= ahead < 2.5
    assert sum(r.round_trips for r in rates) == 40
