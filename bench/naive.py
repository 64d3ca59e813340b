"""The simple per-event design, for comparison: read one, insert one, apply_async, ack one."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from notify.settings import Settings
from notify.store import OutcomeStore
from rules.routing import route
from rules.ruleset import load_file
from schemas.decoding import decode_entry


async def run_naive(settings: Settings, count: int) -> float:
    """Events per second for `count` events, one round trip per step per event."""
    from tasks import send_sms

    rules = load_file(settings.rules_path)
    client = aioredis.from_url(settings.redis_url)
    store = await OutcomeStore.connect(settings.database_url, min_size=1, max_size=1)
    group = "naive"
    await client.xgroup_create(settings.stream, group, id="0", mkstream=True)
    done = 0
    started = time.perf_counter()
    try:
        while done < count:
            reply: Any = await client.xreadgroup(group, "naive-1", {settings.stream: ">"}, count=1)
            for _, messages in reply or []:
                for entry_id, fields in messages:
                    eid = entry_id.decode()
                    event = decode_entry(eid, fields, settings.max_event_bytes)
                    for row in route(event, rules, now=datetime.now(UTC)).notifications:
                        inserted = await store.insert([row])
                        for nid, _ in inserted.to_publish:
                            # Blocking, as a simple design would be; one producer per call.
                            send_sms.apply_async(args=[nid], queue=settings.task_queue)
                    await client.xack(settings.stream, group, eid)
                    done += 1
    finally:
        await store.close()
        await client.aclose()
    return done / (time.perf_counter() - started)
