"""The real processes (consumer, worker, beat) for integration tests, from the one launcher."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from harness.launcher import BIN, ROOT, Process, beat, consumer, wait_until, webhooks, worker

__all__ = [
    "BIN", "ROOT", "Pipeline", "Process", "beat", "consumer", "wait_until", "webhooks", "worker",
]  # fmt: skip


@dataclass
class Pipeline:
    """What the `start_pipeline` fixture started: its environment and processes."""

    env: dict[str, str]
    worker: Process
    consumer: Process


StartPipeline = Callable[..., Pipeline]
Start = Callable[[Process], Process]  # the `procs` fixture
