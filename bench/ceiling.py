"""What Redis allows a consumer: XREADGROUP COUNT 500 then XACK, and nothing else."""

from __future__ import annotations

import time
from typing import Any

import redis
from redis.utils import HIREDIS_AVAILABLE

from bench.env import BenchEnv
from bench.load import load

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
