"""The one process launcher: `make demo`, the integration tests and `make bench` start the
consumer, workers and beat through it, with a throwaway database and the emulators' settings.

The command lines here are the deployment's too: deploy/docker-compose.yml runs the same
flags (a unit test holds them together).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from notify.database import drop_database, ensure_database, with_database

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def consumer_args() -> list[str]:
    return ["notify", "consume"]


def worker_args(
    *,
    pool: str = "threads",
    concurrency: int = 8,
    loglevel: str = "INFO",
    queue: str | None = None,
    hostname: str | None = None,
) -> list[str]:
    """`celery -A tasks worker`: the threads pool (see README, Operations); no gossip or
    mingle, which only slow start-up for a worker that never needs its peers' state."""
    args = ["celery", "-A", "tasks", "worker", "--pool", pool, "--concurrency", str(concurrency)]
    args += ["--loglevel", loglevel, "--without-gossip", "--without-mingle"]
    if queue:
        args += ["--queues", queue]
    if hostname:
        args += ["--hostname", hostname]
    return args


def console_args() -> list[str]:
    return ["notify", "console"]


def webhooks_args() -> list[str]:
    return ["notify", "webhooks"]


def beat_args(schedule: str, *, loglevel: str = "INFO") -> list[str]:
    return ["celery", "-A", "tasks", "beat", "--loglevel", loglevel, "--schedule", schedule]


def emulator_env(url: str, service_account: Path | str, **extra: str) -> dict[str, str]:
    """Provider settings that point the real SDKs at the emulators on `url`."""
    return {
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "test-auth-token",
        "TWILIO_PHONE_NUMBER": "+15005550006",
        "TWILIO_API_URL": url,
        "FCM_API_URL": url,
        "GOOGLE_APPLICATION_CREDENTIALS": str(service_account),
        **extra,
    }


def vonage_env(url: str, private_key: Path | str, **extra: str) -> dict[str, str]:
    """Settings that point the vonage SDK at a Vonage emulator on `url` (sandbox/vonage)."""
    return {
        "VONAGE_APPLICATION_ID": VONAGE_APPLICATION_ID,
        "VONAGE_PRIVATE_KEY": str(private_key),
        "VONAGE_FROM": "+15005550007",
        "VONAGE_API_URL": url,
        "VONAGE_SIGNATURE_SECRET": VONAGE_SIGNATURE_SECRET,
        **extra,
    }


VONAGE_APPLICATION_ID = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
VONAGE_SIGNATURE_SECRET = "test-vonage-signature-secret-of-32-bytes-or-more"


def write_private_key(path: Path) -> str:
    """A fresh RSA key for the Vonage application (PEM at `path`); returns the public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public.decode()


def free_port() -> int:
    """A TCP port nobody listens on right now (for emulators and metrics endpoints)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    predicate: Callable[[], object],
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str | Callable[[], str] = "condition",
) -> None:
    """Bounded polling instead of sleeps: returns as soon as the predicate holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    text = message() if callable(message) else message
    raise TimeoutError(f"timed out after {timeout}s waiting for {text}")


class Process:
    """A child process in its own session, output in `<log_dir>/<name>.log`, stopped
    gracefully (SIGTERM to its group, SIGKILL after a timeout)."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        # Our console scripts live next to this interpreter (a venv need not be on PATH).
        self.args = [str(BIN / args[0]), *args[1:]] if (BIN / args[0]).exists() else args
        self.env = dict(env)
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.proc.pid

    def start(self) -> Process:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.args,
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        def seen() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()[-3000:]}")
            return text in self.log()

        wait_until(seen, timeout, message=f"{self.name} to log {text!r}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the whole process group; returns the exit code (0 for a clean stop)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        code = self.proc.returncode
        self.proc = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def consumer(env: Mapping[str, str], log_dir: Path, name: str = "consumer") -> Process:
    return Process(name, consumer_args(), env, log_dir)


def worker(
    env: Mapping[str, str],
    log_dir: Path,
    name: str = "worker",
    concurrency: int = 8,
    pool: str = "threads",
    loglevel: str = "INFO",
) -> Process:
    """A worker on the environment's queue, named so several can share a host."""
    args = worker_args(
        pool=pool,
        concurrency=concurrency,
        loglevel=loglevel,
        queue=env.get("NOTIFY_TASK_QUEUE", "celery"),
        hostname=f"{name}-{uuid.uuid4().hex[:6]}@%h",
    )
    return Process(name, args, env, log_dir)


def webhooks(env: Mapping[str, str], log_dir: Path, name: str = "webhooks") -> Process:
    """`notify webhooks` on NOTIFY_WEBHOOK_HOST:NOTIFY_WEBHOOK_PORT from `env`."""
    return Process(name, webhooks_args(), env, log_dir)


def console(env: Mapping[str, str], log_dir: Path, name: str = "console") -> Process:
    """`notify console` on NOTIFY_CONSOLE_HOST:NOTIFY_CONSOLE_PORT, with NOTIFY_CONSOLE_USERS."""
    return Process(name, console_args(), env, log_dir)


def beat(env: Mapping[str, str], log_dir: Path, name: str = "beat") -> Process:
    return Process(name, beat_args(str(log_dir / f"{name}-schedule")), env, log_dir)


@dataclass
class ThrowawayDatabase:
    """A database of its own, migrated, for one test session or bench run; `drop()` ends it."""

    base_url: str
    prefix: str = "notify_tmp"
    name: str = field(init=False)
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = f"{self.prefix}_{uuid.uuid4().hex[:8]}"
        self.url = with_database(self.base_url, self.name)

    def create(self) -> ThrowawayDatabase:
        asyncio.run(ensure_database(self.url))
        return self

    def drop(self) -> None:
        asyncio.run(drop_database(self.url))
