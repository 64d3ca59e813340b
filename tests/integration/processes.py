"""Start and stop the real processes (consumer, worker, beat) for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


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
    """A child process with its output in a log file, stopped gracefully by default."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.args,
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
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


def consumer(env: dict[str, str], log_dir: Path, name: str = "consumer") -> Process:
    return Process(name, [str(BIN / "notify"), "consume"], env, log_dir)


def worker(
    env: dict[str, str],
    log_dir: Path,
    name: str = "worker",
    concurrency: int = 8,
    pool: str = "threads",
) -> Process:
    queue = env.get("NOTIFY_TASK_QUEUE", "celery")
    return Process(
        name,
        [
            str(BIN / "celery"),
            "-A",
            "tasks",
            "worker",
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "--queues",
            queue,
            "--hostname",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ],
        env,
        log_dir,
    )


def beat(env: dict[str, str], log_dir: Path, name: str = "beat") -> Process:
    return Process(
        name,
        [
            str(BIN / "celery"),
            "-A",
            "tasks",
            "beat",
            "--loglevel",
            "INFO",
            "--schedule",
            str(log_dir / f"{name}-schedule"),
        ],
        env,
        log_dir,
    )


@dataclass
class Pipeline:
    """What the `start_pipeline` fixture started: its environment and processes."""

    env: dict[str, str]
    worker: Process
    consumer: Process


StartPipeline = Callable[..., Pipeline]
Start = Callable[[Process], Process]  # the `procs` fixture
