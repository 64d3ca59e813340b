"""The failover part: SMS through two emulated providers (Twilio and Vonage, 50/50), one of
them down for a while mid-run. Figures: sends per provider, the time from the outage to the
first SMS moved and to the shares' shift, duplicates (must be 0), and the p99 latency from a
row's first attempt to the provider's acceptance."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from typing import Any

import asyncpg
import redis

from bench.env import BenchEnv
from bench.runs import pending_rows, percentile
from harness.launcher import (
    VONAGE_APPLICATION_ID,
    VONAGE_SIGNATURE_SECRET,
    beat,
    vonage_env,
    wait_until,
    write_private_key,
)
from notify.settings import Settings
from sandbox.vonage import VonageSandbox
from schemas import Channel
from tasks.weights import KEY

LATENCY_MS = 50  # each provider's answer, as in the workers part
DOWN_SECONDS = 20.0  # how long Twilio's emulator refuses connections mid-run
FAILOVER_SMS = 10_000


def failover(env: BenchEnv, count: int, down_s: float, processes: int) -> dict[str, Any]:
    sandbox = env.sandbox()
    sandbox.reset()
    sandbox.set_latency(LATENCY_MS)
    key = env.out / "bench-vonage.key"
    public = write_private_key(key)
    client = redis.Redis.from_url(env.redis_url)
    client.delete(KEY)
    tag = f"{env.tag}-fo"
    with VonageSandbox(
        public_key=public, application_id=VONAGE_APPLICATION_ID,
        signature_secret=VONAGE_SIGNATURE_SECRET, latency_ms=LATENCY_MS,
    ) as vonage:  # fmt: skip
        extra = {
            **vonage_env(vonage.url, key),
            "NOTIFY_SMS_PROVIDERS": "twilio,vonage",
            "NOTIFY_SMS_PROVIDER_WEIGHTS": "twilio=50,vonage=50",
            "NOTIFY_SMS_HEALTH_INTERVAL_SECONDS": "1",
            "NOTIFY_MAX_SEND_ATTEMPTS": "8",
        }
        batch = Settings.from_env().task_batch_size
        asyncio.run(env.queue_rows(pending_rows(count, Channel.SMS, tag), batch))
        env.start(beat(env.env(**extra), env.out, "failover-beat"))
        workers = [env.worker(f"failover{i}", 8, **extra) for i in range(processes)]

        at_twilio_before: list[int] = [0]

        def received() -> int:
            # The Twilio emulator's control API is down with it: count what it had.
            with contextlib.suppress(OSError):
                at_twilio_before[0] = len(sandbox.messages("sms"))
            return at_twilio_before[0] + len(vonage.messages())

        wait_until(lambda: received() >= count // 5, timeout=300, message="a fifth sent")
        before = (at_twilio_before[0], len(vonage.messages()))
        down_at = time.time()
        sandbox.refuse_connections(down_s)
        shifted_at = moved_at = None
        while received() < count and time.time() - down_at < 600:
            points = json.loads(client.get(KEY) or b'{"points": {}}')["points"]
            if shifted_at is None and points.get("twilio", 50.0) == 0:
                shifted_at = time.time()
            if moved_at is None and len(vonage.messages()) > before[1] + 10:
                moved_at = time.time()
            time.sleep(0.1)
        for proc in workers:
            env.stop(proc)
        at_twilio = [m.body or "" for m in sandbox.messages("sms")]
        at_vonage = [m.text for m in vonage.messages()]
    client.delete(KEY)
    client.close()
    sandbox.set_latency(0)
    copies = Counter(at_twilio + at_vonage)
    waits = asyncio.run(_waits(env, f"w-{tag}-"))
    return {
        "sms": count, "down_s": down_s, "worker_processes": processes,
        "sent_twilio": len(at_twilio), "sent_vonage": len(at_vonage),
        "sent_before_outage": sum(before),
        "first_moved_s": None if moved_at is None else moved_at - down_at,
        "shares_shifted_s": None if shifted_at is None else shifted_at - down_at,
        "duplicates": sum(n - 1 for n in copies.values() if n > 1),
        "missing": count - len(copies),
        "latency_p50_ms": percentile(waits, 0.5) * 1000,
        "latency_p99_ms": percentile(waits, 0.99) * 1000,
    }  # fmt: skip


async def _waits(env: BenchEnv, prefix: str) -> list[float]:
    """Per SMS: from its first attempt's start to its accepted attempt's end."""
    conn = await asyncpg.connect(env.database_url)
    try:
        rows = await conn.fetch(
            """SELECT min(a.started_at) AS first,
                      max(a.finished_at) FILTER (WHERE a.outcome = 'sent') AS done
               FROM notifications n JOIN notification_attempts a ON a.notification_id = n.id
               WHERE n.event_id LIKE $1 GROUP BY n.id""",
            prefix + "%",
        )
    finally:
        await conn.close()
    return [(r["done"] - r["first"]).total_seconds() for r in rows if r["done"] is not None]
