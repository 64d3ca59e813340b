"""The send-rate limiter: does one sender's rate hold across worker processes, and what
does it cost in Redis round trips per send?

A backlog of SMS (alternately 1 and 2 segments) for one sender, 3 worker processes and beat,
NOTIFY_SMS_SEGMENTS_PER_SECOND set, the emulator answering at once. The rate is measured
from the emulator's arrival times over a 60 s window after a warm-up; round trips are
counted twice: by the workers (notify_sms_limiter_calls_total, scraped from each) and by
Redis itself (INFO commandstats, script calls; other clients of the same Redis add noise).
"""

from __future__ import annotations

import asyncio
import random
import time
import urllib.request
from typing import Any

import redis
from prometheus_client.parser import text_string_to_metric_families

from bench.env import BenchEnv
from harness.launcher import beat, free_port
from notify.settings import Settings
from rules.routing import idempotency_key
from schemas import Channel, NewNotification
from tasks.limiter import cost

WARMUP_S = 5.0
WINDOW_S = 60.0
SHORT = "Your parcel SHP-{n} is running late; new ETA tomorrow."  # 1 segment
LONG = ("Your parcel SHP-{n} is running late because of the weather at the hub. "
        "We are sorry; the driver will bring it tomorrow between 9 and 12, and you can "
        "change the slot in the app.")  # 2 segments  # fmt: skip


def bodies(count: int) -> list[str]:
    return [(SHORT if n % 2 == 0 else LONG).format(n=n) for n in range(count)]


def _rows(texts: list[str], tag: str) -> list[NewNotification]:
    return [
        NewNotification(
            idempotency_key=idempotency_key(f"l-{tag}-{n}", "bench", "sms"),
            event_id=f"l-{tag}-{n}", event_type="bench", event_subject=None, rule="bench",
            channel=Channel.SMS, recipient=f"+1415555{n % 10000:04d}", body=text,
        )
        for n, text in enumerate(texts)
    ]  # fmt: skip


def _script_calls(client: redis.Redis) -> int:
    stats: dict[str, Any] = client.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))
               for name in ("evalsha", "eval"))  # fmt: skip


_SCRAPED = frozenset({"notify_sms_limiter_calls_total", "notify_sms_slot_wait_seconds_sum",
                      "notify_sms_slot_wait_seconds_count"})  # fmt: skip


def _scrape(port: int) -> dict[str, float]:
    """Sum of each sample of interest on one worker's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sent = sample.name == "notify_notifications_total" and sample.labels["status"] == "sent"
            if sent or sample.name in _SCRAPED:
                out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


def limiter(env: BenchEnv, rate: float, processes: int) -> dict[str, Any]:
    """Segments per second held across `processes` workers, and Redis round trips per send."""
    seconds = WARMUP_S + WINDOW_S + 10
    texts = bodies(int(rate * seconds / 1.5))  # 1.5 segments per message on average
    sender = f"+1500555{random.randrange(10_000):04d}"
    settings = Settings.from_env()
    sandbox = env.sandbox()
    sandbox.reset()
    sandbox.set_latency(0)
    client = redis.Redis.from_url(env.redis_url)
    asyncio.run(env.queue_rows(_rows(texts, f"{env.tag}-{sender}"), settings.task_batch_size))
    extra = {"NOTIFY_SMS_SEGMENTS_PER_SECOND": str(rate), "TWILIO_PHONE_NUMBER": sender}
    ports = [free_port() for _ in range(processes)]
    calls_before = _script_calls(client)
    procs = [env.worker(f"limited{i}", 8, NOTIFY_WORKER_METRICS_PORT=str(port), **extra)
             for i, port in enumerate(ports)]  # fmt: skip
    procs.append(env.start(beat(env.env(**extra), env.out, "limiter-beat")))
    started = time.monotonic()
    try:
        sandbox.wait_for(len(texts), timeout=seconds * 3)
        scraped = [_scrape(port) for port in ports]
    finally:
        for proc in procs:
            env.stop(proc)
        client.delete(f"notify:send-rate:{sender}")
    redis_calls = _script_calls(client) - calls_before
    client.close()
    wall = time.monotonic() - started
    arrivals = sorted((m.received_at, cost(m.body or "")) for m in sandbox.messages("sms"))
    first = arrivals[0][0]
    window = [seg for t, seg in arrivals if first + WARMUP_S <= t < first + WARMUP_S + WINDOW_S]
    measured = sum(window) / WINDOW_S
    sends = len(arrivals)
    calls = sum(s.get("notify_sms_limiter_calls_total", 0.0) for s in scraped)
    waits = sum(s.get("notify_sms_slot_wait_seconds_sum", 0.0) for s in scraped)
    reservations = sum(s.get("notify_sms_slot_wait_seconds_count", 0.0) for s in scraped)
    return {
        "rate": rate, "worker_processes": processes, "messages": sends,
        "segments": sum(seg for _, seg in arrivals), "window_s": WINDOW_S,
        "segments_per_s": measured, "messages_per_s": len(window) / WINDOW_S,
        "deviation_pct": (measured - rate) / rate * 100,
        "sent_per_process": [int(s.get("notify_notifications_total", 0)) for s in scraped],
        "limiter_calls": int(calls), "limiter_calls_per_send": calls / max(1, sends),
        "redis_script_calls": redis_calls,
        "redis_script_calls_per_send": redis_calls / max(1, sends),
        "mean_slot_wait_s": waits / max(1.0, reservations), "wall_s": wall,
    }  # fmt: skip
