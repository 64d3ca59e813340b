"""A throwaway environment per run: database, stream and queue names, emulator, processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from consumer.store import ensure_database
from sandbox import SandboxClient

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
RULES = """
rules:
  - name: bench-sms
    on: shipment.delayed
    channel: sms
    to: "{{ data.customer.phone }}"
    body: "Hi {{ data.customer.name }}, {{ data.shipment_id }} is late. t={{ data.sent_at }}"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with_db(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@dataclass
class BenchEnv:
    out: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    sandbox_port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        base = os.environ.get("DATABASE_URL", "postgresql://localhost/notifications")
        self.admin_url = _with_db(base, "postgres")
        self.database_url = _with_db(base, f"notify_bench_{self.tag}")
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
            "NOTIFY_LOG_LEVEL": "WARNING", "TWILIO_ACCOUNT_SID": "AC" + "b" * 32,
            "TWILIO_AUTH_TOKEN": "bench", "TWILIO_PHONE_NUMBER": "+15005550006",
            "TWILIO_API_URL": sandbox, "FCM_API_URL": sandbox,
            "GOOGLE_APPLICATION_CREDENTIALS": str(self.creds), **extra,
        }  # fmt: skip

    def setup(self) -> None:
        self.out.mkdir(exist_ok=True)
        self.rules.write_text(RULES)
        asyncio.run(ensure_database(self.database_url))
        args = ["-m", "sandbox", "--port", str(self.sandbox_port)]
        self.start(
            "sandbox", [str(BIN / "python"), *args, "--write-service-account", str(self.creds)]
        )
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

    def sandbox(self) -> SandboxClient:
        return SandboxClient(f"http://127.0.0.1:{self.sandbox_port}", timeout=60)

    def start(self, name: str, args: list[str], **extra: str) -> subprocess.Popen[bytes]:
        log = (self.out / f"{name}.log").open("ab")
        proc = subprocess.Popen(args, env=self.env(**extra), cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        log.close()
        self.procs.append(proc)
        return proc

    def consumer(self, **extra: str) -> subprocess.Popen[bytes]:
        return self.start("consumer", [str(BIN / "notify"), "consume"], **extra)

    def worker(self, name: str, concurrency: int = 8) -> subprocess.Popen[bytes]:
        return self.start(name, [str(BIN / "celery"), "-A", "tasks", "worker", "--pool", "threads",
                                 "--concurrency", str(concurrency), "-Q", self.queue, "-n",
                                 f"{name}-{self.tag}@%h", "--without-gossip", "--without-mingle",
                                 "--loglevel", "WARNING"])  # fmt: skip

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        if proc in self.procs:
            self.procs.remove(proc)

    def teardown(self, *, drop: bool = True) -> None:
        for proc in list(self.procs):
            self.stop(proc)
        import redis

        client = redis.Redis.from_url(self.redis_url)
        client.delete(self.stream, f"{self.stream}.dlq", self.queue, f"_kombu.binding.{self.queue}")
        client.close()
        if drop:
            asyncio.run(self._drop())

    async def _drop(self) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "notify_bench_{self.tag}" WITH (FORCE)')
        finally:
            await conn.close()
