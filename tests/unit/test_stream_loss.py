"""The stream or its group vanishing (DEL, FLUSHDB, XGROUP DESTROY, a Redis restart without
persistence): recognised as StreamLost, and the group recreated at the right place."""

from __future__ import annotations

from collections.abc import AsyncIterator

import fakeredis
import pytest
import pytest_asyncio
from pytest_mock import MockerFixture
from redis.exceptions import ResponseError

from consumer.stream import EventStream, StreamLost

pytestmark = pytest.mark.asyncio

STREAM, GROUP = "events", "notifications"


@pytest_asyncio.fixture
async def client() -> AsyncIterator[fakeredis.FakeAsyncRedis]:
    redis = fakeredis.FakeAsyncRedis(version=(7,))
    yield redis
    await redis.aclose()


@pytest_asyncio.fixture
async def stream(client: fakeredis.FakeAsyncRedis) -> EventStream:
    events = EventStream(client, STREAM, GROUP, "c1", f"{STREAM}.dlq")
    await events.ensure_group()
    return events


async def add(client: fakeredis.FakeAsyncRedis, n: int, start: int = 0) -> list[str]:
    ids = []
    for i in range(start, start + n):
        fields = {"id": f"e{i}", "type": "shipment.delayed", "data": "{}"}
        ids.append((await client.xadd(STREAM, fields)).decode())  # type: ignore[arg-type]
    return ids


async def read_ids(stream: EventStream) -> list[str]:
    return [e.id for e in await stream.read(100, None, own_pending=False)]


async def test_a_destroyed_group_resumes_after_the_last_delivered_entry(
    client: fakeredis.FakeAsyncRedis, stream: EventStream
) -> None:
    delivered = await add(client, 3)
    assert await read_ids(stream) == delivered
    undelivered = await add(client, 2, start=3)
    await client.xgroup_destroy(STREAM, GROUP)
    with pytest.raises(StreamLost, match="NOGROUP"):
        await read_ids(stream)
    # The stream survived: re-reading it from 0 would route every retained event again.
    assert await stream.recreate_group() == delivered[-1]
    assert await read_ids(stream) == undelivered


async def test_a_deleted_stream_is_recreated_and_read_from_its_start(
    client: fakeredis.FakeAsyncRedis, stream: EventStream
) -> None:
    await add(client, 3)
    await read_ids(stream)
    await client.delete(STREAM)
    with pytest.raises(StreamLost, match="NOGROUP"):
        await stream.claim_idle(0, 10)
    published_after = await add(client, 2, start=3)  # producers carried on meanwhile
    assert await stream.recreate_group() == "0"
    assert await read_ids(stream) == published_after
    assert stream.autoclaim_cursor == "0-0"


async def test_recreating_makes_the_stream_when_nothing_was_published_yet(
    client: fakeredis.FakeAsyncRedis, stream: EventStream
) -> None:
    await add(client, 1)
    await read_ids(stream)
    await client.flushdb()
    assert await stream.recreate_group() == "0"
    assert [g["name"] for g in await client.xinfo_groups(STREAM)] == [GROUP.encode()]
    published = await add(client, 1)
    assert await read_ids(stream) == published


async def test_recreating_twice_is_harmless(
    client: fakeredis.FakeAsyncRedis, stream: EventStream
) -> None:
    # Every consumer of the group meets the loss; the first recreates, the rest get BUSYGROUP.
    other = EventStream(client, STREAM, GROUP, "c2", f"{STREAM}.dlq")
    await client.delete(STREAM)
    assert (await stream.recreate_group(), await other.recreate_group()) == ("0", "0")
    assert len(await client.xinfo_groups(STREAM)) == 1


async def test_the_last_delivered_entry_is_learned_from_xinfo_too(
    client: fakeredis.FakeAsyncRedis, stream: EventStream
) -> None:
    # Another consumer did the reading; this one's sampler saw the group's position.
    other = EventStream(client, STREAM, GROUP, "c2", f"{STREAM}.dlq")
    delivered = await add(client, 2)
    await read_ids(other)
    await stream.info()
    await client.xgroup_destroy(STREAM, GROUP)
    assert await stream.recreate_group() == delivered[-1]


@pytest.mark.parametrize(
    "reply",
    [
        "UNBLOCKED the stream key no longer exists",
        "NOGROUP the consumer group this client was blocked on no longer exists",
        "NOGROUP No such key 'events' or consumer group 'notifications' in XREADGROUP",
    ],
)
async def test_real_redis_replies_for_a_vanished_stream_mean_lost(
    stream: EventStream, mocker: MockerFixture, reply: str
) -> None:
    # Real Redis's words (fakeredis answers a blocked read on a deleted key with nothing).
    mocker.patch.object(stream.client, "xreadgroup", side_effect=ResponseError(reply))
    with pytest.raises(StreamLost, match=reply[:8]):
        await stream.read(10, 100, own_pending=False)


async def test_other_errors_are_not_mistaken_for_a_loss(
    stream: EventStream, mocker: MockerFixture
) -> None:
    mocker.patch.object(stream.client, "xreadgroup", side_effect=ResponseError("WRONGTYPE x"))
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await stream.read(10, None, own_pending=False)


async def test_entries_in_hand_survive_a_loss_before_their_counts_are_read(
    client: fakeredis.FakeAsyncRedis, stream: EventStream, mocker: MockerFixture
) -> None:
    ids = await add(client, 2)
    await read_ids(stream)
    lost = ResponseError("NOGROUP No such key")
    mocker.patch.object(client, "xpending_range", side_effect=lost)
    entries = await stream.read_pending_after("0", 10)
    assert [(e.id, e.deliveries) for e in entries] == [(ids[0], 1), (ids[1], 1)]
