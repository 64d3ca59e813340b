"""Stream logic on fakeredis: group, reads, redelivery, claiming, dead letters, one batch."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence

import fakeredis
import pytest
import pytest_asyncio

from consumer.loop import Consumer
from consumer.publisher import TaskPublisher
from consumer.reloader import RulesWatcher
from consumer.settings import Settings
from consumer.store import Inserted
from consumer.stream import DeadLetter, EventStream
from schemas import NewNotification

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def client() -> AsyncIterator[fakeredis.FakeAsyncRedis]:
    redis = fakeredis.FakeAsyncRedis()
    yield redis
    await redis.aclose()


def stream_for(client: fakeredis.FakeAsyncRedis, consumer: str = "c1") -> EventStream:
    return EventStream(client, "events", "notifications", consumer, "events.dlq")


async def add(client: fakeredis.FakeAsyncRedis, n: int, **extra: str) -> list[str]:
    ids = []
    for i in range(n):
        fields = {"id": f"e{i}", "type": "shipment.delayed", "data": "{}", **extra}
        ids.append((await client.xadd("events", fields)).decode())  # type: ignore[arg-type]
    return ids


async def test_group_creation_is_idempotent_and_makes_the_stream(
    client: fakeredis.FakeAsyncRedis,
) -> None:
    stream = stream_for(client)
    await stream.ensure_group()
    await stream.ensure_group()
    assert await client.exists("events")
    assert [g["name"] for g in await client.xinfo_groups("events")] == [b"notifications"]


async def test_own_pending_entries_come_back_after_a_restart(
    client: fakeredis.FakeAsyncRedis,
) -> None:
    stream = stream_for(client)
    await stream.ensure_group()
    ids = await add(client, 3)
    first = await stream.read(10, None, own_pending=False)
    assert [e.id for e in first] == ids and all(e.deliveries == 1 for e in first)
    again = stream_for(client)  # same name, new process
    pending = await again.read_pending_after("0", 10)
    assert [e.id for e in pending] == ids
    assert all(e.deliveries == 2 for e in pending)
    assert await again.read_pending_after(ids[-1], 10) == []


async def test_finish_dead_letters_and_acknowledges_together(
    client: fakeredis.FakeAsyncRedis,
) -> None:
    stream = stream_for(client)
    await stream.ensure_group()
    ids = await add(client, 2)
    entries = await stream.read(10, None, own_pending=False)
    bad = entries[1]
    assert bad.fields is not None
    await stream.finish([ids[0]], [DeadLetter(bad.id, bad.fields, "bad_json", "nope", 1)])
    assert (await client.xpending("events", "notifications"))["pending"] == 0
    [(_, letter)] = await client.xrange("events.dlq")
    assert letter[b"_dlq_reason"] == b"bad_json" and letter[b"_dlq_entry_id"] == bad.id.encode()
    assert letter[b"id"] == b"e1" and letter[b"_dlq_deliveries"] == b"1"


async def test_idle_entries_of_a_dead_consumer_are_claimed(
    client: fakeredis.FakeAsyncRedis,
) -> None:
    dead, alive = stream_for(client, "dead"), stream_for(client, "alive")
    await dead.ensure_group()
    ids = await add(client, 3)
    await dead.read(10, None, own_pending=False)
    await client.xdel("events", ids[1])  # trimmed while pending
    claimed, _ = await alive.claim_idle(0, 10)
    by_id = {e.id: e for e in claimed}
    assert ids[0] in by_id and by_id[ids[0]].deliveries == 2
    assert by_id.get(ids[1]) is None or by_id[ids[1]].fields is None


async def test_info_reports_lag_and_pending(client: fakeredis.FakeAsyncRedis) -> None:
    stream = stream_for(client)
    await stream.ensure_group()
    await add(client, 5)
    await stream.read(2, None, own_pending=False)
    info = await stream.info()
    assert (info.length, info.pending, info.consumers) == (5, 2, {"c1": 2})
    assert info.lag_known and info.lag == 3


class FakeStore:
    """Just enough of OutcomeStore: keys are unique, and pending rows can be re-published."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, NewNotification]] = {}

    async def insert(
        self, rows: Sequence[NewNotification], redelivered: frozenset[str] = frozenset()
    ) -> Inserted:
        publish, inserted, duplicates = [], set(), 0
        for row in rows:
            if row.idempotency_key in self.rows:
                duplicates += 1
                if row.idempotency_key in redelivered:
                    publish.append((self.rows[row.idempotency_key][0], row.channel.value))
                continue
            nid = len(self.rows) + 1
            self.rows[row.idempotency_key] = (nid, row)
            inserted.add(row.idempotency_key)
            if row.status.value == "pending":
                publish.append((nid, row.channel.value))
        return Inserted(publish, inserted, duplicates)

    async def cancel(self, events: Sequence[tuple[str, str, str]]) -> int:
        return 0


async def test_one_batch_end_to_end(client: fakeredis.FakeAsyncRedis, tmp_path: object) -> None:
    rules = tmp_path / "rules.yaml"  # type: ignore[operator]
    rules.write_text(
        "rules:\n  - name: r\n    on: shipment.*\n    channel: sms\n"
        '    to: "{{ data.phone }}"\n    body: "hi"\n'
    )
    settings = Settings(rules_path=str(rules))
    stream = stream_for(client)
    await stream.ensure_group()
    store = FakeStore()
    consumer = Consumer(
        settings,
        stream,
        store,
        TaskPublisher(client, "q"),  # type: ignore[arg-type]
        RulesWatcher(str(rules)),
    )
    good = {"id": "e1", "type": "shipment.delayed", "data": json.dumps({"phone": "+14155550100"})}
    await client.xadd("events", good)  # type: ignore[arg-type]
    await client.xadd("events", {**good, "id": "e2", "type": "order.placed"})  # type: ignore[arg-type]
    await client.xadd("events", {"id": "e3", "type": "x", "data": "[]"})
    await client.xadd("events", good)  # type: ignore[arg-type]  # published twice
    result = await consumer.handle(await stream.read(10, None, own_pending=False))
    assert (result.acked, result.dead) == (3, 1)
    assert result.outcomes == {"routed": 1, "unmatched": 1, "duplicate": 1}
    assert await client.llen("q") == 1  # one task, although the event came twice
    assert (await client.xpending("events", "notifications"))["pending"] == 0
    assert await client.xlen("events.dlq") == 1
