"""Consumers at scale (issue 22): 1, 2 and 3 `notify consume` on one backlog of the mix, and
what the cancel facts cost.

On two cores the figure that counts is CPU per event summed over every process doing the
work, read from /proc: the consumers, the Postgres backends serving the bench database, and
redis-server (shared with whatever else runs on the machine, so an upper bound). Events/s
only says how the cores were shared out.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import asyncpg
import redis

from bench import mix
from bench.env import BenchEnv
from harness.launcher import wait_until

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc/<pid>/stat (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def redis_pid(client: redis.Redis) -> int:
    info: Any = client.info("server")
    return int(info["process_id"])


async def _backends(database_url: str) -> list[int]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        return [r["pid"] for r in rows]
    finally:
        await conn.close()


async def _fact_bytes(database_url: str) -> tuple[int, int]:
    conn = await asyncpg.connect(database_url)
    try:
        count = await conn.fetchval("SELECT count(*) FROM cancellations")
        size = await conn.fetchval("SELECT pg_total_relation_size('cancellations')")
        return int(count), int(size)
    finally:
        await conn.close()


def _members(client: redis.Redis, stream: str) -> int:
    try:
        return len(client.xinfo_consumers(stream, "notifications"))
    except redis.ResponseError:  # no stream or group yet
        return 0


def _drained(client: redis.Redis, stream: str, total: int) -> bool:
    groups: Any = client.xinfo_groups(stream)
    mine = [g for g in groups if g["name"].decode() == "notifications"]
    if not mine:
        return False
    return int(mine[0]["entries-read"] or 0) >= total and int(mine[0]["pending"]) == 0


def drain(env: BenchEnv, events: int, consumers: int, label: str, rules: str) -> dict[str, Any]:
    """One backlog of the mix through `consumers` processes; rates and CPU per event."""
    client = redis.Redis.from_url(env.redis_url)
    stream, queue = f"{env.stream}-{label}", f"{env.queue}-{label}"
    path = env.out / f"bench-{label}-rules.yaml"
    path.write_text(rules)
    extra = {"NOTIFY_STREAM": stream, "NOTIFY_TASK_QUEUE": queue, "NOTIFY_RULES": str(path)}
    server = redis_pid(client)
    try:
        procs = [env.consumer(name=f"{label}-{n}", **extra) for n in range(consumers)]
        # Their start-up is not the events' cost: begin once each is reading.
        wait_until(lambda: _members(client, stream) == consumers, 120, message="consumers up")
        before = {p.pid: cpu_seconds(p.pid) for p in procs}
        redis_before = cpu_seconds(server)
        started = time.monotonic()
        mix.load(client, stream, events, f"{label}-{env.tag}")
        while not _drained(client, stream, events):
            if time.monotonic() - started > 900:
                raise TimeoutError(f"{label}: {events} entries not drained in 900 s")
            time.sleep(0.1)
        seconds = time.monotonic() - started
        consumer_cpu = sum(cpu_seconds(p.pid) - before[p.pid] for p in procs)
        redis_cpu = cpu_seconds(server) - redis_before
        # Backends open while the consumers run are theirs (pools keep their connections).
        postgres_cpu = sum(cpu_seconds(pid) for pid in asyncio.run(_backends(env.database_url)))
        for proc in procs:
            env.stop(proc)
    finally:
        client.delete(stream, queue)
        client.close()
    per_event = 1e6 / events
    return {
        "consumers": consumers,
        "events": events,
        # From the start of loading (it overlaps the drain) until all are acknowledged.
        "events_per_s": events / seconds,
        "cpu_us_per_event": (consumer_cpu + postgres_cpu + redis_cpu) * per_event,
        "consumer_us_per_event": consumer_cpu * per_event,
        "postgres_us_per_event": postgres_cpu * per_event,
        "redis_us_per_event": redis_cpu * per_event,
    }


# The mix with the reminder's cancel_on removed: the same events, the same rows, no cancel
# facts, no subject locks, no cancelling UPDATE (the `shipment.delivered` events match
# nothing then).
_NO_CANCEL = mix.RULES.replace("    cancel_on: [shipment.delivered, shipment.cancelled]\n", "")


def scale(env: BenchEnv, events: int) -> dict[str, Any]:
    assert _NO_CANCEL != mix.RULES
    # Without first, so the one-consumer run it is compared with is not the colder one.
    plain = drain(env, events, 1, "nocancel", _NO_CANCEL)
    runs = [drain(env, events, n, f"scale{n}", mix.RULES) for n in (1, 2, 3)]
    facts, size = asyncio.run(_fact_bytes(env.database_url))
    return {
        "events": events,
        "runs": runs,
        "no_cancel": plain,
        "cancel_us_per_event": runs[0]["cpu_us_per_event"] - plain["cpu_us_per_event"],
        "facts": facts,
        "bytes_per_fact": size / max(1, facts),
    }
