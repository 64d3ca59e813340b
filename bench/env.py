"""A throwaway environment per run: database, stream and queue names, emulator, processes."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import redis
import redis.asyncio as aioredis

from consumer.task_publisher import TaskPublisher
from harness.launcher import (
    ROOT,
    Process,
    ThrowawayDatabase,
    consumer,
    emulator_env,
    free_port,
    worker,
)
from notify.store import OutcomeStore
from sandbox import SandboxClient
from schemas import NewNotification

__all__ = ["ROOT", "BenchEnv"]

# One SMS rule with t= in the body, not rules.yaml: each event is one timed send.
RULES = """
rules:
  - name: bench-sms
    on: shipment.delayed
    channel: sms
    to: "{{ data.customer.phone }}"
    body: "Hi {{ data.customer.name }}, {{ data.shipment_id }} is late. t={{ data.sent_at }}"
"""


@dataclass
class BenchEnv:
    out: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    procs: list[Process] = field(default_factory=list)
    sandbox_port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        base = os.environ.get("DATABASE_URL", "postgresql://localhost/notifications")
        self.database = ThrowawayDatabase(base, "notify_bench")
        self.database_url = self.database.url
        self.redis_url = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
        self.stream = f"bench-{self.tag}"
        self.queue = f"bench-q-{self.tag}"
        self.rules = self.out / "bench-rules.yaml"
        self.creds = self.out / "bench-serviceAccountKey.json"

    def env(self, **extra: str) -> dict[str, str]:
        sandbox = f"http://127.0.0.1:{self.sandbox_port}"
        return {
            **os.environ,
            "REDIS_URL": self.redis_url, "CELERY_BROKER_URL": self.redis_url,
            "DATABASE_URL": self.database_url, "NOTIFY_STREAM": self.stream,
            "NOTIFY_TASK_QUEUE": self.queue, "NOTIFY_RULES": str(self.rules),
            "NOTIFY_METRICS_PORT": "0", "NOTIFY_WORKER_METRICS_PORT": "0",
            "NOTIFY_LOG_LEVEL": "WARNING",
            **emulator_env(sandbox, self.creds, TWILIO_AUTH_TOKEN="bench"), **extra,
        }  # fmt: skip

    def setup(self) -> None:
        self.out.mkdir(exist_ok=True)
        self.rules.write_text(RULES)
        self.database.create()
        args = ["python", "-m", "sandbox", "--port", str(self.sandbox_port)]
        self.start(Process("sandbox", [*args, "--write-service-account", str(self.creds)],
                           self.env(), self.out))  # fmt: skip
        client = self.sandbox()
        deadline = time.monotonic() + 20
        while True:
            try:
                client.health()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def seed_suppressions(self, count: int) -> None:
        """`count` suppressed numbers, none of them a bench recipient: the consumer's check is
        an index lookup per row, and this shows what a large table costs it."""
        if count <= 0:
            return

        async def seed() -> None:
            conn = await asyncpg.connect(self.database_url)
            try:
                await conn.execute(
                    """INSERT INTO suppressions (channel, recipient, reason, source)
                       SELECT 'sms', '+1646' || lpad(n::text, 7, '0'), 'opt_out', 'bench'
                       FROM generate_series(1, $1) AS n""",
                    count,
                )
                await conn.execute("ANALYZE suppressions")
            finally:
                await conn.close()

        asyncio.run(seed())

    async def queue_rows(self, rows: Sequence[NewNotification], batch: int) -> None:
        """Store `rows` and publish their send tasks on the bench's queue, as the consumer
        would: a worker part's backlog."""
        store = await OutcomeStore.connect(self.database_url)
        client = aioredis.from_url(self.redis_url)
        try:
            inserted = await store.insert(rows)
            await TaskPublisher(client, self.queue, batch).publish(inserted.to_publish)
        finally:
            await store.close()
            await client.aclose()

    def sandbox(self) -> SandboxClient:
        return SandboxClient(f"http://127.0.0.1:{self.sandbox_port}", timeout=60)

    def start(self, proc: Process) -> Process:
        self.procs.append(proc.start())
        return proc

    def consumer(self, name: str = "consumer", **extra: str) -> Process:
        return self.start(consumer(self.env(**extra), self.out, name))

    def worker(self, name: str, concurrency: int = 8, **extra: str) -> Process:
        env = self.env(**extra)
        return self.start(worker(env, self.out, name, concurrency, loglevel="WARNING"))

    def stop(self, proc: Process) -> None:
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    def teardown(self, *, drop: bool = True) -> None:
        for proc in list(self.procs):
            self.stop(proc)
        client = redis.Redis.from_url(self.redis_url)
        client.delete(self.stream, f"{self.stream}.dlq", self.queue, f"_kombu.binding.{self.queue}")
        client.close()
        if drop:
            self.database.drop()
