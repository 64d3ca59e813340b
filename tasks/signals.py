"""Worker lifecycle hooks: logging, metrics endpoint, per-process client reset."""

from __future__ import annotations

from typing import Any

from celery import signals
from celery.concurrency.prefork import TaskPool as PreforkPool

from notify import logs
from tasks import backlog, metrics, runtime
from tasks.app import app

log = logs.get("worker")


@signals.worker_init.connect
def _worker_init(**_: Any) -> None:
    settings = app.settings
    logs.configure(settings.log_level)
    metrics.reset_multiprocess_dir(settings)
    metrics.start_at_zero()
    metrics.start_cost_at_zero(settings, _sms_rules(settings.rules_path))
    metrics.serve(settings)
    backlog.start(settings)


def _sms_rules(path: str) -> list[str]:
    """The SMS rules' names, for the cost series' labels; none if the file cannot be read
    here (a worker does not need the rules to send)."""
    from rules.ruleset import load_file
    from schemas import Channel, RulesError

    try:
        return [r.name for r in load_file(path).rules if r.channel is Channel.SMS]
    except (OSError, RulesError):
        return []


@signals.beat_init.connect
def _beat_init(**_: Any) -> None:
    logs.configure(app.settings.log_level)


@signals.worker_process_init.connect
def _child_init(**_: Any) -> None:
    runtime.reset()  # never reuse the parent's sockets after fork
    _warm()


@signals.worker_ready.connect
def _ready(sender: Any = None, **_: Any) -> None:
    # Threads/solo pools run tasks in this process; prefork's parent runs none (its
    # children warm up in _child_init), so it opens no DB pool of its own.
    if not isinstance(getattr(sender, "pool", None), PreforkPool):
        _warm()
    metrics.start_sampling(app.settings)  # lag, from the main process whatever the pool


def _warm() -> None:
    try:
        runtime.warm(app.settings)
    except Exception as exc:  # noqa: BLE001 - a cold start is slower, not broken
        log.warning("could not warm up", extra=logs.fields(error=f"{type(exc).__name__}: {exc}"))


@signals.worker_process_shutdown.connect
def _child_exit(pid: int | None = None, **_: Any) -> None:
    if pid is not None:
        metrics.child_exited(app.settings, pid)


@signals.worker_shutdown.connect
def _worker_shutdown(**_: Any) -> None:
    metrics.stop_sampling()
    runtime.reset()
