"""What the services allow a consumer: Redis reading and acknowledging, Postgres inserting."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import redis
from redis.utils import HIREDIS_AVAILABLE

from bench import mix
from bench.env import RULES, BenchEnv
from bench.load import event_fields, load
from notify.store import OutcomeStore
from rules.routing import route
from rules.ruleset import load_text
from schemas import NewNotification
from schemas.decoding import decode_entry

BATCH = 500


def read_ack(env: BenchEnv, events: int) -> dict[str, Any]:
    """Drain a backlog of `events` with the consumer's read size and one XACK per batch.

    redis-py with hiredis (the consumer's parser), one connection, no decoding, routing or
    writes: the ceiling a consumer of this stream could reach on this machine.
    """
    client = redis.Redis.from_url(env.redis_url)
    stream, group = f"{env.stream}-ceiling", "ceiling"
    try:
        load(client, stream, events, f"ceiling-{env.tag}")
        client.xgroup_create(stream, group, id="0")
        done = 0
        started = time.perf_counter()
        while done < events:
            reply: Any = client.xreadgroup(group, "c", {stream: ">"}, count=BATCH)
            ids = [entry_id for _, entries in reply for entry_id, _ in entries]
            client.xack(stream, group, *ids)
            done += len(ids)
        seconds = time.perf_counter() - started
    finally:
        client.delete(stream)
        client.close()
    return {"events": events, "events_per_s": events / seconds, "hiredis": HIREDIS_AVAILABLE}


def insert_rate(env: BenchEnv, *, mixed: bool, events: int = 20_000) -> dict[str, Any]:
    """What Postgres allows a consumer: the store's insert alone, one connection, back to back.

    The rows are the part's own (its rules routed over its events in this process, untimed),
    in batches of 500 events as the consumer writes them, into the bench's database.
    """
    return asyncio.run(_insert_rate(env, mixed, events))


async def _insert_rate(env: BenchEnv, mixed: bool, events: int) -> dict[str, Any]:
    rules = load_text(mix.RULES if mixed else RULES)
    fields = mix.event_fields if mixed else event_fields
    now = datetime.now(UTC)
    millis = int(now.timestamp() * 1000)
    batches: list[list[NewNotification]] = []
    for start in range(0, events, BATCH):
        batch: list[NewNotification] = []
        for n in range(start, min(events, start + BATCH)):
            raw = {k.encode(): v.encode() for k, v in fields(n, f"ins-{env.tag}").items()}
            event = decode_entry(f"{millis}-{n}", raw, 1 << 20)
            batch += route(event, rules, now=now).notifications
        batches.append(batch)
    store = await OutcomeStore.connect(env.database_url, min_size=1, max_size=1)
    try:
        started = time.perf_counter()
        for batch in batches:
            await store.insert(batch)
        seconds = time.perf_counter() - started
    finally:
        await store.close()
    rows = sum(len(b) for b in batches)
    return {"events": events, "rows": rows, "rows_per_s": rows / seconds,
            "events_per_s": events / seconds}  # fmt: skip
