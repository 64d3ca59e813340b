"""One consumer batch on fakeredis: read, route, insert, publish, ack."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence

import fakeredis
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from consumer.loop import Consumer
from consumer.reloader import RulesWatcher
from consumer.stream import Entry, EventStream
from consumer.task_publisher import TaskPublisher
from notify.inserts import Inserted
from notify.settings import Settings
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


class RecordingOutcomeStore:
    """Just enough of OutcomeStore: keys are unique, and pending rows can be re-published;
    rows to a recipient in `suppressed` are stored skipped, as the real insert does."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, NewNotification]] = {}
        self.suppressed: set[str] = set()

    async def insert(
        self, rows: Sequence[NewNotification], redelivered: frozenset[str] = frozenset()
    ) -> Inserted:
        publish, inserted, duplicates, skipped = [], set(), 0, {}
        for row in rows:
            if row.idempotency_key in self.rows:
                duplicates += 1
                if row.idempotency_key in redelivered:
                    publish.append((self.rows[row.idempotency_key][0], row.channel.value))
                continue
            nid = len(self.rows) + 1
            self.rows[row.idempotency_key] = (nid, row)
            inserted.add(row.idempotency_key)
            if row.recipient in self.suppressed:
                skipped[row.idempotency_key] = "suppressed"
            elif row.status.value == "pending":
                publish.append((nid, row.channel.value))
        return Inserted(publish, inserted, duplicates, skipped)

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
    store = RecordingOutcomeStore()
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


async def test_a_matched_event_that_produces_nothing_is_not_unmatched(
    client: fakeredis.FakeAsyncRedis, tmp_path: object
) -> None:
    """`unmatched` stays "no rule listens to the type"; a rule that listens and produces
    nothing (its condition false, `to` rendering nobody) is `no_notifications`."""
    rules = tmp_path / "rules.yaml"  # type: ignore[operator]
    rules.write_text(
        "rules:\n  - name: r\n    on: shipment.*\n    when: data.urgent\n    channel: sms\n"
        '    to: "{{ data.phones }}"\n    body: "hi"\n'
    )
    stream = stream_for(client)
    await stream.ensure_group()
    consumer = Consumer(Settings(rules_path=str(rules)), stream, RecordingOutcomeStore(),
                        TaskPublisher(client, "q"), RulesWatcher(str(rules)))  # type: ignore[arg-type]  # fmt: skip
    for event_id, event_type, data in (
        ("e1", "shipment.delayed", {"urgent": False, "phones": ["+14155550100"]}),
        ("e2", "shipment.delayed", {"urgent": True, "phones": []}),
        ("e3", "order.placed", {"urgent": True, "phones": ["+14155550100"]}),
        ("e4", "shipment.delayed", {"urgent": True, "phones": ["+14155550100"]}),
    ):
        fields = {"id": event_id, "type": event_type, "data": json.dumps(data)}
        await client.xadd("events", fields)  # type: ignore[arg-type]
    before = REGISTRY.get_sample_value(
        "notify_events_total", {"type": "shipment.delayed", "outcome": "no_notifications"}
    )
    result = await consumer.handle(await stream.read(10, None, own_pending=False))
    assert result.outcomes == {"no_notifications": 2, "unmatched": 1, "routed": 1}
    after = REGISTRY.get_sample_value(
        "notify_events_total", {"type": "shipment.delayed", "outcome": "no_notifications"}
    )
    assert (after or 0) - (before or 0) == 2


async def test_a_rule_whose_recipient_is_undefined_does_not_hold_back_the_event(
    client: fakeredis.FakeAsyncRedis, tmp_path: object
) -> None:
    rules = tmp_path / "rules.yaml"  # type: ignore[operator]
    rules.write_text(
        "rules:\n"
        '  - name: device\n    on: shipment.*\n    channel: push\n    to: "{{ data.device }}"\n'
        "    body: hi\n"
        '  - name: sms\n    on: shipment.*\n    channel: sms\n    to: "{{ data.phone }}"\n'
        "    body: hi\n"
    )
    stream = stream_for(client)
    await stream.ensure_group()
    store = RecordingOutcomeStore()
    consumer = Consumer(
        Settings(rules_path=str(rules)),
        stream,
        store,
        TaskPublisher(client, "q"),  # type: ignore[arg-type]
        RulesWatcher(str(rules)),
    )
    event = {"id": "e1", "type": "shipment.delayed", "data": json.dumps({"phone": "+14155550100"})}
    await client.xadd("events", event)  # type: ignore[arg-type]
    result = await consumer.handle(await stream.read(10, None, own_pending=False))
    assert (result.acked, result.dead, result.outcomes) == (1, 0, {"routed": 1})
    assert sorted((r.rule, r.status.value, r.error_code) for _, r in store.rows.values()) == [
        ("device", "failed", "template_error"),
        ("sms", "pending", None),
    ]
    assert await client.llen("q") == 1  # the SMS task
    assert (await client.xpending("events", "notifications"))["pending"] == 0


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_rows_the_store_skipped_are_counted_as_skipped_and_not_published(
    client: fakeredis.FakeAsyncRedis, tmp_path: object
) -> None:
    rules = tmp_path / "rules.yaml"  # type: ignore[operator]
    rules.write_text(
        "rules:\n  - name: r\n    on: shipment.*\n    channel: sms\n"
        '    to: "{{ data.phone }}"\n    body: "hi"\n'
    )
    stream = stream_for(client)
    await stream.ensure_group()
    store = RecordingOutcomeStore()
    store.suppressed.add("+14155550199")
    consumer = Consumer(
        Settings(rules_path=str(rules)),
        stream,
        store,
        TaskPublisher(client, "q"),  # type: ignore[arg-type]
        RulesWatcher(str(rules)),
    )
    counted = [
        ("notify_notifications_inserted_total", {"channel": "sms", "status": "skipped"}),
        ("notify_notifications_skipped_total", {"channel": "sms", "reason": "suppressed"}),
        ("notify_notifications_inserted_total", {"channel": "sms", "status": "pending"}),
    ]
    before = [sample(name, **labels) for name, labels in counted]
    for n, phone in enumerate(("+14155550199", "+14155550100")):
        event = {"id": f"e{n}", "type": "shipment.delayed", "data": json.dumps({"phone": phone})}
        await client.xadd("events", event)  # type: ignore[arg-type]
    result = await consumer.handle(await stream.read(10, None, own_pending=False))
    assert result.outcomes == {"routed": 2}
    assert await client.llen("q") == 1  # the suppressed row has no task
    after = [sample(name, **labels) for name, labels in counted]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]


async def test_routing_in_turns_prepares_what_routing_in_one_go_does(tmp_path: object) -> None:
    """The writer gets turns while a batch is routed; the batch itself is the same."""
    rules = tmp_path / "rules.yaml"  # type: ignore[operator]
    rules.write_text(
        "rules:\n  - name: r\n    on: shipment.*\n    channel: sms\n"
        '    to: "{{ data.phone }}"\n    body: "hi {{ data.n }}"\n    delay: 1h\n'
        "    cancel_on: shipment.delivered\n"
    )
    consumer = Consumer(
        Settings(rules_path=str(rules), max_deliveries=3),
        stream_for(fakeredis.FakeAsyncRedis()),
        RecordingOutcomeStore(),  # type: ignore[arg-type]
        TaskPublisher(fakeredis.FakeAsyncRedis(), "q"),  # type: ignore[arg-type]
        RulesWatcher(str(rules)),
    )
    entries = []
    for n in range(300):  # several turns' worth, every kind of entry
        data = json.dumps({"phone": f"+1415555{n % 50:04d}", "n": n}).encode()
        kind = n % 7
        fields: dict[bytes, bytes] | None = {
            b"id": f"e{n % 250}".encode(),
            b"type": b"shipment.delivered" if kind == 1 else b"shipment.delayed",
            b"subject": f"S{n % 9}".encode(),
            b"data": b"[]" if kind == 2 else data,
        }
        if kind == 3:
            fields = None
        entries.append(Entry(f"{1700000000000 + n}-0", fields, 5 if kind == 4 else 1 + kind % 2))
    one_go = consumer.prepare(entries)
    in_turns = await consumer.prepare_in_turns(entries)
    for name in ("size", "acks", "rows", "cancels", "per_event", "redelivered"):
        assert getattr(in_turns, name) == getattr(one_go, name), name
    assert [(d.entry_id, d.reason, d.detail) for d in in_turns.dead] == [
        (d.entry_id, d.reason, d.detail) for d in one_go.dead
    ]
    assert one_go.rows and one_go.cancels and one_go.dead and one_go.redelivered


async def test_collect_less_freezes_startup_objects_and_spaces_young_collections() -> None:
    import gc

    from consumer import loop

    before = gc.get_threshold()
    try:
        loop.collect_less()
        assert gc.get_freeze_count() > 0  # what the imports built is never walked again
        assert gc.get_threshold() == (loop._GC_YOUNG, *before[1:])
        assert gc.isenabled()  # cycles made after startup are still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
