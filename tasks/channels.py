"""The channel tasks workers run: `tasks.send_sms` and `tasks.send_push`."""

from __future__ import annotations

import time
from collections import Counter

from celery import Task

from consumer import logs
from consumer.outage import TRANSIENT
from consumer.publisher import TASK_NAMES
from schemas import Channel
from tasks.celery_app_instance import app
from tasks.classification import backoff
from tasks.delivery import deliver, deliver_many
from tasks.runtime import Runtime, runtime

log = logs.get("tasks")


class _Outage:
    """Log a database outage once when it starts and once when it ends, not per task."""

    since: float | None = None

    @classmethod
    def started(cls, exc: BaseException) -> None:
        if cls.since is None:
            cls.since = time.monotonic()
            log.warning(
                "postgres unavailable; tasks will retry",
                extra=logs.fields(error=f"{type(exc).__name__}: {exc}"),
            )

    @classmethod
    def ended(cls) -> None:
        if cls.since is not None:
            log.warning(
                "postgres is back",
                extra=logs.fields(outage_seconds=round(time.monotonic() - cls.since, 2)),
            )
            cls.since = None


def _outage_retry(task: Task, rt: Runtime, exc: BaseException) -> Exception:
    """Postgres was unreachable before anything was recorded: run the whole task again later.

    Rows a batch already claimed are skipped by the retry; the sweeper settles them.
    """
    _Outage.started(exc)
    s = rt.settings
    delay = backoff(task.request.retries + 1, base=s.retry_base_seconds, cap=s.retry_max_seconds)
    retry: Exception = task.retry(countdown=delay, max_retries=None)
    return retry


def _run(task: Task, notification_id: int, channel: Channel) -> str:
    rt = runtime()
    try:
        outcome = deliver(rt, int(notification_id), channel)
    except TRANSIENT as exc:
        raise _outage_retry(task, rt, exc) from exc
    _Outage.ended()
    if outcome.retry_in is not None:
        # The row is back to `pending`; the retried task claims it again.
        raise task.retry(countdown=outcome.retry_in, max_retries=None)
    return outcome.status


@app.task(name="tasks.send_batch", shared=False, bind=True)
def send_batch(self: Task, channel: str, notification_ids: list[int]) -> dict[str, int]:
    """Many rows of one channel per message: the broker's per-message cost is the bottleneck."""
    rt = runtime()
    try:
        results = deliver_many(rt, [int(i) for i in notification_ids], Channel(channel))
    except TRANSIENT as exc:
        raise _outage_retry(self, rt, exc) from exc
    _Outage.ended()
    single = TASK_NAMES[channel]
    for nid, outcome in results:
        if outcome.retry_in is not None:
            # Back to `pending`; each row retries on its own schedule as a single task.
            app.send_task(single, args=[nid], countdown=outcome.retry_in, ignore_result=True)
    return dict(Counter(outcome.status for _, outcome in results))


@app.task(name="tasks.send_sms", shared=False, bind=True)
def send_sms(self: Task, notification_id: int) -> str:
    return _run(self, notification_id, Channel.SMS)


@app.task(name="tasks.send_push", shared=False, bind=True)
def send_push(self: Task, notification_id: int) -> str:
    return _run(self, notification_id, Channel.PUSH)
