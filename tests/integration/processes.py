"""The real processes (consumer, worker, beat) for integration tests, from the one launcher."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sandbox.launcher import BIN, ROOT, Process, beat, consumer, wait_until, worker

__all__ = [
    "BIN", "ROOT", "Pipeline", "Process", "beat", "consumer", "wait_until", "webhooks", "worker",
]  # fmt: skip

# `notify webhooks` takes all its settings from the environment, like `notify consume`.
# (To move into sandbox/launcher.py next to consumer_args() when sandbox/ is free to edit.)
WEBHOOKS_ARGS = ["notify", "webhooks"]


def webhooks(env: Mapping[str, str], log_dir: Path, name: str = "webhooks") -> Process:
    return Process(name, WEBHOOKS_ARGS, env, log_dir)


@dataclass
class Pipeline:
    """What the `start_pipeline` fixture started: its environment and processes."""

    env: dict[str, str]
    worker: Process
    consumer: Process


StartPipeline = Callable[..., Pipeline]
Start = Callable[[Process], Process]  # the `procs` fixture
