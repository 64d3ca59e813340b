"""EventStream on fakeredis: the group, reads, restarts, claims, dead letters and lag."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import fakeredis
import pytest
import pytest_asyncio
from pytest_mock import MockerFixture
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from consumer.stream import DeadLetter, Entry, EventStream
from notify.stream_info import read_group_info

pytestmark = pytest.mark.asyncio

STREAM, GROUP, DLQ = "events", "notifications", "events.dlq"

Connect = Callable[..., fakeredis.FakeAsyncRedis]
MakeStream = Callable[..., EventStream]
Add = Callable[..., Awaitable[list[str]]]


@pytest_asyncio.fixture
async def connect() -> AsyncIterator[Connect]:
    """New clients of one fake server, as separate processes would have; all closed after."""
    server = fakeredis.FakeServer()
    clients: list[fakeredis.FakeAsyncRedis] = []

    def make(version: tuple[int, ...] = (7,)) -> fakeredis.FakeAsyncRedis:
        client = fakeredis.FakeAsyncRedis(server=server, version=version)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
def client(connect: Connect) -> fakeredis.FakeAsyncRedis:
    return connect()


@pytest.fixture
def make_stream(client: fakeredis.FakeAsyncRedis) -> MakeStream:
    def make(consumer: str = "c1", on: fakeredis.FakeAsyncRedis | None = None) -> EventStream:
        return EventStream(on or client, STREAM, GROUP, consumer, DLQ)

    return make


@pytest.fixture
def add(client: fakeredis.FakeAsyncRedis) -> Add:
    async def add(n: int, **extra: str) -> list[str]:
        ids = []
        for i in range(n):
            fields = {"id": f"e{i}", "type": "shipment.delayed", "data": "{}", **extra}
            ids.append((await client.xadd(STREAM, fields)).decode())  # type: ignore[arg-type]
        return ids

    return add


async def pending_ids(client: fakeredis.FakeAsyncRedis, consumer: str | None = None) -> list[str]:
    rows: Any = await client.xpending_range(STREAM, GROUP, "-", "+", 1000, consumername=consumer)
    return [row["message_id"].decode() for row in rows]


# --- the group ------------------------------------------------------------------------------------


async def test_ensure_group_makes_the_stream_and_is_idempotent(
    client: fakeredis.FakeAsyncRedis, make_stream: MakeStream
) -> None:
    stream = make_stream()
    await stream.ensure_group()
    assert await client.type(STREAM) == b"stream" and await client.xlen(STREAM) == 0
    await stream.ensure_group()  # BUSYGROUP is swallowed
    await make_stream("c2").ensure_group()
    groups = await client.xinfo_groups(STREAM)
    assert [g["name"] for g in groups] == [GROUP.encode()]


async def test_a_new_group_starts_from_the_beginning_of_an_existing_stream(
    make_stream: MakeStream, add: Add
) -> None:
    ids = await add(3)
    stream = make_stream()
    await stream.ensure_group()
    assert [e.id for e in await stream.read(10, None, own_pending=False)] == ids


async def test_ensure_group_again_does_not_rewind_the_group(
    make_stream: MakeStream, add: Add
) -> None:
    stream = make_stream()
    await stream.ensure_group()
    await add(2)
    await stream.read(10, None, own_pending=False)
    await stream.ensure_group()
    assert await stream.read(10, None, own_pending=False) == []


async def test_ensure_group_raises_other_errors(
    client: fakeredis.FakeAsyncRedis, make_stream: MakeStream
) -> None:
    await client.set(STREAM, "not a stream")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await make_stream().ensure_group()


# --- reading --------------------------------------------------------------------------------------


async def test_read_returns_new_entries_once_in_order(make_stream: MakeStream, add: Add) -> None:
    stream = make_stream()
    await stream.ensure_group()
    ids = await add(5, subject="SHP-1")
    first = await stream.read(3, None, own_pending=False)
    assert [e.id for e in first] == ids[:3]
    assert first[0] == Entry(
        ids[0],
        {b"id": b"e0", b"type": b"shipment.delayed", b"data": b"{}", b"subject": b"SHP-1"},
        1,
    )
    assert [e.id for e in await stream.read(10, None, own_pending=False)] == ids[3:]
    assert await stream.read(10, None, own_pending=False) == []


async def test_entries_are_shared_out_between_consumers(make_stream: MakeStream, add: Add) -> None:
    one, two = make_stream("c1"), make_stream("c2")
    await one.ensure_group()
    ids = await add(4)
    got_one = await one.read(2, None, own_pending=False)
    got_two = await two.read(10, None, own_pending=False)
    assert [e.id for e in got_one + got_two] == ids
    assert [e.id for e in await one.read(10, None, own_pending=True)] == ids[:2]
    assert [e.id for e in await two.read(10, None, own_pending=True)] == ids[2:]


async def test_own_pending_entries_come_back_after_a_restart(
    connect: Connect, make_stream: MakeStream, add: Add
) -> None:
    stream = make_stream()
    await stream.ensure_group()
    ids = await add(3)
    await stream.read(10, None, own_pending=False)

    restarted = make_stream("c1", on=connect())  # same consumer name, new connection
    again = await restarted.read_pending_after("0", 10)
    assert [e.id for e in again] == ids
    assert [e.fields for e in again] == [
        {b"id": f"e{i}".encode(), b"type": b"shipment.delayed", b"data": b"{}"} for i in range(3)
    ]
    assert [e.deliveries for e in again] == [2, 2, 2]
    assert all(e.deliveries >= 2 for e in await restarted.read(10, None, own_pending=True))
    # Nothing new was delivered by re-reading the history.
    assert await restarted.read(10, None, own_pending=False) == []


async def test_pending_entries_are_paged_by_cursor(make_stream: MakeStream, add: Add) -> None:
    stream = make_stream()
    await stream.ensure_group()
    ids = await add(5)
    await stream.read(10, None, own_pending=False)
    page = await stream.read_pending_after("0", 2)
    assert [e.id for e in page] == ids[:2]
    page = await stream.read_pending_after(page[-1].id, 2)
    assert [e.id for e in page] == ids[2:4]
    page = await stream.read_pending_after(page[-1].id, 2)
    assert [e.id for e in page] == ids[4:]
    assert await stream.read_pending_after(ids[-1], 2) == []


async def test_acknowledged_entries_are_not_pending_any_more(
    make_stream: MakeStream, add: Add
) -> None:
    stream = make_stream()
    await stream.ensure_group()
    ids = await add(3)
    await stream.read(10, None, own_pending=False)
    await stream.finish([ids[0], ids[2]], [])
    assert [e.id for e in await stream.read_pending_after("0", 10)] == [ids[1]]


async def test_a_pending_entry_deleted_meanwhile_has_no_fields(
    client: fakeredis.FakeAsyncRedis, make_stream: MakeStream, add: Add
) -> None:
    stream = make_stream()
    await stream.ensure_group()
    ids = await add(3)
    await stream.read(10, None, own_pending=False)
    await client.xdel(STREAM, ids[1])
    again = {e.id: e for e in await stream.read_pending_after("0", 10)}
    assert again[ids[0]].fields is not None and again[ids[2]].fields is not None
    # Redis answers [id, nil] for a pending entry that no longer exists.
    assert list(again) == ids and again[ids[1]].fields is None


# --- finishing: acknowledge and dead-letter -------------------------------------------------------


async def test_finish_dead_letters_with_the_original_fields_and_acks(
    client: fakeredis.FakeAsyncRedis, make_stream: MakeStream, add: Add
) -> None:
    stream = make_stream()
    await stream.ensure_group()
    ids = await add(3, subject="SHP-9")
    entries = await stream.read(10, None, own_pending=False)
    bad = entries[1]
    assert bad.fields is not None
    letter = DeadLetter(bad.id, bad.fields, "bad_json", "data is not JSON", deliveries=3)
    await stream.finish([ids[0]], [letter])

    assert await pending_ids(client) == [ids[2]]
    [(_, record)] = await client.xrange(DLQ)
    assert {k: v for k, v in record.items() if not k.startswith(b"_dlq_")} == bad.fields
    assert record[b"_dlq_reason"] == b"bad_json"
    assert record[b"_dlq_detail"] == b"data is not JSON"
    assert record[b"_dlq_entry_id"] == bad.id.encode()
    assert record[b"_dlq_deliveries"] == b"3"
    assert float(record[b"_dlq_time"]) > 0


async def test_finish_dead_letters_before_it_acknowledges_and_in_no_transaction(
    client: fakeredis.FakeAsyncRedis, make_stream: MakeStream, add: Add, mocker: MockerFixture
) -> None:
    """The two streams may live in different slots of a Redis Cluster: no MULTI spans them.
    An acknowledgement that fails after the dead letter was written leaves the entry pending
    (delivered again), never dead-lettered nowhere."""
    stream = make_stream()
    await stream.ensure_group()
    ids = await add(2)
    entries = await stream.read(10, None, own_pending=False)
    letter = DeadLetter(ids[1], entries[1].fields or {}, "oversized", "too big")
    transactions = mocker.spy(Pipeline, "_execute_transaction")
    mocker.patch.object(stream.client, "xack", side_effect=ConnectionError("gone"))
    with pytest.raises(ConnectionError):
        await stream.finish([ids[0]], [letter])
    assert [r[b"_dlq_entry_id"] for _, r in await client.xrange(DLQ)] == [ids[1].encode()]
    assert await pending_ids(client) == ids
    mocker.stopall()
    await stream.finish([ids[0]], [letter])  # the redelivery: a second copy, then the ack
    assert await pending_ids(client) == []
    assert len(await client.xrange(DLQ)) == 2
    transactions.assert_not_called()


async def test_finish_only_dead_letters(
    client: fakeredis.FakeAsyncRedis, make_stream: MakeStream, add: Add
) -> None:
    stream = make_stream()
    await stream.ensure_group()
    ids = await add(2)
    entries = await stream.read(10, None, own_pending=False)
    letters = [DeadLetter(e.id, e.fields or {}, "missing_field", "no id") for e in entries]
    await stream.finish([], letters)
    assert await pending_ids(client) == []
    records = await client.xrange(DLQ)
    assert [r[b"_dlq_entry_id"].decode() for _, r in records] == ids
    assert [r[b"_dlq_deliveries"] for _, r in records] == [b"1", b"1"]


async def test_a_dead_letter_detail_is_bounded(
    client: fakeredis.FakeAsyncRedis, make_stream: MakeStream, add: Add
) -> None:
    stream = make_stream()
    await stream.ensure_group()
    [eid] = await add(1)
    await stream.read(1, None, own_pending=False)
    await stream.finish([], [DeadLetter(eid, {b"id": b"x"}, "bad_time", "x" * 5000)])
    [(_, record)] = await client.xrange(DLQ)
    assert len(record[b"_dlq_detail"]) == 1000


async def test_finish_with_nothing_sends_nothing(
    make_stream: MakeStream, mocker: MockerFixture
) -> None:
    stream = make_stream()
    pipeline = mocker.spy(stream.client, "pipeline")
    await stream.finish([], [])
    pipeline.assert_not_called()


# --- claiming idle entries ------------------------------------------------------------------------


async def test_idle_entries_of_another_consumer_are_claimed(
    client: fakeredis.FakeAsyncRedis, make_stream: MakeStream, add: Add
) -> None:
    dead, alive = make_stream("dead"), make_stream("alive")
    await dead.ensure_group()
    ids = await add(3)
    await dead.read(10, None, own_pending=False)

    claimed, deleted = await alive.claim_idle(0, 10)
    assert [e.id for e in claimed] == ids and deleted == 0
    assert [e.deliveries for e in claimed] == [2, 2, 2]
    assert claimed[0].fields == {b"id": b"e0", b"type": b"shipment.delayed", b"data": b"{}"}
    assert await pending_ids(client, "alive") == ids
    assert await pending_ids(client, "dead") == []
    assert alive.autoclaim_cursor == "0-0"  # the sweep went round the whole list


async def test_entries_not_idle_long_enough_stay_put(make_stream: MakeStream, add: Add) -> None:
    dead, alive = make_stream("dead"), make_stream("alive")
    await dead.ensure_group()
    await add(2)
    await dead.read(10, None, own_pending=False)
    assert await alive.claim_idle(3600, 10) == ([], 0)


async def test_claiming_resumes_from_its_cursor(make_stream: MakeStream, add: Add) -> None:
    dead, alive = make_stream("dead"), make_stream("alive")
    await dead.ensure_group()
    ids = await add(5)
    await dead.read(10, None, own_pending=False)
    first, _ = await alive.claim_idle(0, 2)
    assert [e.id for e in first] == ids[:2]
    assert alive.autoclaim_cursor == ids[2]
    second, _ = await alive.claim_idle(0, 2)
    assert [e.id for e in second] == ids[2:4]
    third, _ = await alive.claim_idle(0, 2)
    assert [e.id for e in third] == ids[4:] and alive.autoclaim_cursor == "0-0"


async def test_entries_deleted_while_pending_are_released(
    client: fakeredis.FakeAsyncRedis, make_stream: MakeStream, add: Add
) -> None:
    dead, alive = make_stream("dead"), make_stream("alive")
    await dead.ensure_group()
    ids = await add(4)
    await dead.read(10, None, own_pending=False)
    await client.xdel(STREAM, ids[1], ids[3])

    claimed, deleted = await alive.claim_idle(0, 10)
    assert [e.id for e in claimed] == [ids[0], ids[2]]
    assert deleted == 2  # Redis 7 reports the ids it cleared from the PEL
    assert await pending_ids(client) == [ids[0], ids[2]]


async def test_claiming_works_with_the_redis_6_reply(
    connect: Connect, make_stream: MakeStream, add: Add
) -> None:
    old = connect(version=(6, 2))
    dead, alive = make_stream("dead", on=old), make_stream("alive", on=old)
    await dead.ensure_group()
    ids = await add(3)
    await dead.read(10, None, own_pending=False)
    claimed, deleted = await alive.claim_idle(0, 10)  # no third element in the reply
    assert ([e.id for e in claimed], deleted) == (ids, 0)


# --- notify.stream_info: length, lag, pending -----------------------------------------------------


async def test_info_reports_lag_pending_and_consumers(
    client: fakeredis.FakeAsyncRedis, make_stream: MakeStream, add: Add
) -> None:
    one, two = make_stream("c1"), make_stream("c2")
    await one.ensure_group()
    await add(6)
    await one.read(2, None, own_pending=False)
    await two.read(1, None, own_pending=False)
    info = await read_group_info(client, STREAM, GROUP, with_consumers=True)
    assert (info.length, info.pending, info.consumers) == (6, 3, {"c1": 2, "c2": 1})
    sampled = await read_group_info(client, STREAM, GROUP)  # what every process samples
    assert (sampled.pending, sampled.consumers) == (3, {})
    assert (info.lag, info.lag_known) == (3.0, True)


async def test_info_of_an_empty_group(
    client: fakeredis.FakeAsyncRedis, make_stream: MakeStream
) -> None:
    stream = make_stream()
    await stream.ensure_group()
    info = await read_group_info(client, STREAM, GROUP)
    assert (info.length, info.lag, info.lag_known, info.pending, info.consumers) == (
        0,
        0.0,
        True,
        0,
        {},
    )


async def test_lag_is_counted_by_hand_when_deletions_hide_it(
    client: fakeredis.FakeAsyncRedis, make_stream: MakeStream, add: Add
) -> None:
    stream = make_stream()
    await stream.ensure_group()
    ids = await add(6)
    await stream.read(2, None, own_pending=False)
    await client.xdel(STREAM, ids[4])  # a tombstone after the group's last-delivered id
    [group] = await client.xinfo_groups(STREAM)
    assert group["lag"] is None  # what Redis says: it cannot tell
    info = await read_group_info(client, STREAM, GROUP)
    assert (info.lag, info.lag_known, info.length) == (3.0, True, 5)


async def test_lag_is_nan_and_unknown_when_too_many_to_count(
    client: fakeredis.FakeAsyncRedis, make_stream: MakeStream
) -> None:
    stream = make_stream()
    await stream.ensure_group()
    pipe = client.pipeline(transaction=False)
    for i in range(10_003):  # 10_001 left to read: one more than the count cap
        pipe.xadd(STREAM, {"id": f"e{i}"})
    ids = [i.decode() for i in await pipe.execute()]
    await stream.read(1, None, own_pending=False)
    await client.xdel(STREAM, ids[5])
    info = await read_group_info(client, STREAM, GROUP)
    assert math.isnan(info.lag) and info.lag_known is False
    assert (info.length, info.pending) == (10_002, 1)


async def test_lag_is_nan_and_unknown_when_the_group_is_missing(
    client: fakeredis.FakeAsyncRedis, add: Add
) -> None:
    await add(2)  # the stream exists, our group does not
    info = await read_group_info(client, STREAM, GROUP)
    assert math.isnan(info.lag) and info.lag_known is False
    assert (info.length, info.pending, info.consumers) == (2, 0, {})
