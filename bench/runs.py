"""The four measurements. Each returns plain figures; report.py prints and plots them."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import asyncpg
import redis

from bench import mix
from bench.ceiling import insert_rate
from bench.env import BenchEnv
from bench.load import cpu_per_entry, event_fields, load, throughput, watch
from bench.naive import run_naive
from notify.settings import Settings
from rules.routing import idempotency_key
from sandbox.google.identifiers import registration_token
from schemas import Channel, NewNotification, PushId

# The first seconds include each process's first provider connections; reported separately.
WARMUP_SECONDS = 2


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def consumer_drain(
    env: BenchEnv, events: int, label: str, *, mixed: bool = False, ceiling: bool = True
) -> dict[str, Any]:
    """A backlog of `events`, workers stopped, one `notify consume`: events/s and RSS.

    `mixed`: bench/mix.py's three rules and events instead of the one SMS rule.
    `ceiling`: also the store's insert alone over the part's rows (bench/ceiling.py)."""
    client = redis.Redis.from_url(env.redis_url)
    stream = f"{env.stream}-{label}"
    # A queue of its own, dropped after: the tasks it publishes must not reach the workers of
    # the later parts (they would send this backlog before their own rows).
    queue = f"{env.queue}-{label}"
    extra = {"NOTIFY_STREAM": stream, "NOTIFY_TASK_QUEUE": queue}
    try:
        if mixed:
            rules = env.out / "bench-mix-rules.yaml"
            rules.write_text(mix.RULES)
            extra["NOTIFY_RULES"] = str(rules)
            mix.load(client, stream, events, f"{label}-{env.tag}")
        else:
            load(client, stream, events, f"{label}-{env.tag}")
        proc = env.consumer(**extra)
        samples = watch(client, stream, "notifications", events, proc.pid)
        env.stop(proc)
    finally:
        client.delete(stream, queue)
        client.close()
    t0 = samples[0].t
    return {
        "events": events,
        "events_per_s": throughput(samples),
        "insert_ceiling": insert_rate(env, mixed=mixed) if ceiling else None,
        "cpu_us_per_event": cpu_per_entry(samples) * 1e6,
        "rss_max_mb": max(s.rss_mb for s in samples),
        "rss_samples_mb": [round(s.rss_mb, 1) for s in samples[:: max(1, len(samples) // 20)]],
        "series": [(round(s.t - t0, 3), s.lag, s.done) for s in samples],
    }


def naive(env: BenchEnv, events: int) -> dict[str, Any]:
    client = redis.Redis.from_url(env.redis_url)
    stream = f"{env.stream}-naive"
    load(client, stream, events, f"naive-{env.tag}")
    settings = Settings.from_env(env.env(NOTIFY_STREAM=stream))
    try:
        rate = asyncio.run(run_naive(settings, events))
    finally:
        client.delete(stream)
        client.delete(env.queue)
        client.close()
    return {"events": events, "events_per_s": rate}


def pending_rows(count: int, channel: Channel, tag: str) -> list[NewNotification]:
    sms = channel is Channel.SMS
    return [
        NewNotification(
            idempotency_key=idempotency_key(f"w-{tag}-{n}", "bench", channel.value),
            event_id=f"w-{tag}-{n}", event_type="bench", event_subject=None,
            rule="bench", channel=channel,
            recipient=f"+1415555{n % 10000:04d}" if sms else registration_token(f"b{n}"),
            push_id=None if sms else PushId.TOKEN,
            body=f"worker bench {n}", title=None if sms else "Bench",
        )
        for n in range(count)
    ]  # fmt: skip


async def _attempts(env: BenchEnv, prefix: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(env.database_url)
    try:
        return list(await conn.fetch(
            """SELECT a.started_at, a.finished_at FROM notification_attempts a
               JOIN notifications n ON n.id = a.notification_id
               WHERE n.event_id LIKE $1 AND a.outcome = 'sent'""", prefix + "%"))  # fmt: skip
    finally:
        await conn.close()


def workers(
    env: BenchEnv, count: int, latency_ms: int, processes: int, channel: Channel = Channel.SMS
) -> dict[str, Any]:
    """Provider calls/s with the emulator adding `latency_ms` to each request."""
    sandbox = env.sandbox()
    sandbox.reset()
    sandbox.set_latency(latency_ms)
    tag = f"{env.tag}-{channel.value}"
    batch = Settings.from_env().task_batch_size
    asyncio.run(env.queue_rows(pending_rows(count, channel, tag), batch))
    started = time.monotonic()
    procs = [env.worker(f"worker{i}") for i in range(processes)]
    try:
        sandbox.wait_for(count, timeout=300)
    finally:
        for proc in procs:
            env.stop(proc)
    wall = time.monotonic() - started
    received = sorted(m.received_at for m in sandbox.messages(channel.value))
    attempts = asyncio.run(_attempts(env, f"w-{tag}-"))
    calls = [(a["finished_at"] - a["started_at"]).total_seconds() for a in attempts]
    sandbox.set_latency(0)
    # Steady state: the middle 80% of arrivals, so worker start-up is not counted.
    lo, hi = received[len(received) // 10], received[len(received) * 9 // 10]
    steady = (len(received) * 8 // 10) / max(1e-9, hi - lo)
    return {
        "channel": channel.value, "sends": count, "worker_processes": processes,
        "latency_ms": latency_ms,
        "sends_per_s": steady, "wall_s": wall,
        "call_p50_ms": percentile(calls, 0.5) * 1000, "call_p99_ms": percentile(calls, 0.99) * 1000,
    }  # fmt: skip


def latency(env: BenchEnv, rate: int, seconds: int, processes: int) -> dict[str, Any]:
    """XADD -> emulator receipt at a steady `rate` events/s with consumer and workers up."""
    sandbox = env.sandbox()
    sandbox.reset()
    stream = f"{env.stream}-lat"
    client = redis.Redis.from_url(env.redis_url)
    consumer = env.consumer(NOTIFY_STREAM=stream, NOTIFY_BLOCK_MS="50")
    procs = [env.worker(f"lat-worker{i}") for i in range(processes)]
    try:
        time.sleep(3)  # let the processes connect before the clock starts
        total = rate * seconds
        start = time.time()
        for n in range(total):
            due = start + n / rate
            pause = due - time.time()
            if pause > 0:
                time.sleep(pause)
            client.xadd(stream, event_fields(n, f"lat-{env.tag}", time.time()))  # type: ignore[arg-type]
        sandbox.wait_for(total, timeout=120)
    finally:
        for proc in [consumer, *procs]:
            env.stop(proc)
        client.delete(stream)
        client.close()
    delays, steady = [], []
    for message in sandbox.messages("sms"):
        sent = float((message.body or "").rsplit("t=", 1)[1])
        delays.append((message.received_at - sent) * 1000)
        if sent >= start + WARMUP_SECONDS:
            steady.append(delays[-1])
    return {
        "rate": rate, "seconds": seconds, "events": len(delays),
        "p50_ms": percentile(delays, 0.5), "p99_ms": percentile(delays, 0.99),
        "max_ms": max(delays), "mean_ms": statistics.fmean(delays),
        "steady_p50_ms": percentile(steady, 0.5), "steady_p99_ms": percentile(steady, 0.99),
        "warmup_seconds": WARMUP_SECONDS,
    }  # fmt: skip
