"""The channel tasks workers run: `tasks.send_sms` and `tasks.send_push`."""

from __future__ import annotations

import time
from collections import Counter

from celery import Task

from notify import logs, task_names
from notify.outage import TRANSIENT, OutageLog
from notify.task_names import SEND_ONE
from schemas import Channel, TaskResult
from tasks.app import app
from tasks.classification import backoff
from tasks.delivery import SendResult, deliver, deliver_many
from tasks.runtime import Runtime, runtime

log = logs.get("tasks")


# Per process: a database outage is logged once when it starts and once at its end.
_OUTAGE = OutageLog("postgres", "tasks will retry")


def _outage_retry(task: Task, rt: Runtime, exc: BaseException) -> Exception:
    """Postgres was unreachable before anything was recorded: run the whole task again later.

    Rows a batch already claimed are skipped by the retry; the sweeper settles them.
    """
    _OUTAGE.started(exc)
    s = rt.settings
    delay = backoff(task.request.retries + 1, base=s.retry_base_seconds, cap=s.retry_max_seconds)
    retry: Exception = task.retry(countdown=delay)
    return retry


def _come_back(nid: int, channel: Channel, outcome: SendResult) -> None:
    """A row waiting for its sender's turn: a task at its slot, holding the slot (or, with
    no countdown, nothing: beat hands the row out from `slot_at`)."""
    if outcome.retry_in is None:
        return
    args: list[float]
    if outcome.slot is None:  # no slot (the limiter was unreachable): ask again later
        args, countdown = [nid], outcome.retry_in
    else:  # counted from now: a batch publishes only after its ready rows were sent
        args, countdown = [nid, outcome.slot], max(0.0, outcome.slot - time.time())
    app.send_task(SEND_ONE[channel], args=args, countdown=countdown, ignore_result=True)


def _run(task: Task, notification_id: int, channel: Channel, slot: float | None = None) -> str:
    rt = runtime(app.settings)
    try:
        outcome = deliver(rt, int(notification_id), channel, slot)
    except TRANSIENT as exc:
        raise _outage_retry(task, rt, exc) from exc
    _OUTAGE.ended()
    if outcome.status is TaskResult.DEFERRED:
        _come_back(int(notification_id), channel, outcome)
    elif outcome.retry_in is not None:
        # The row is back to `pending`; the retried task claims it again.
        raise task.retry(countdown=outcome.retry_in)
    return outcome.status


# How often a row is retried is the row's business (NOTIFY_MAX_SEND_ATTEMPTS, the
# reconciliation budget, the outage backoff), never Celery's. The task's own max_retries
# must say so: `retry(max_retries=None)` means "the task's default", which is 3.
@app.task(name=task_names.SEND_BATCH, shared=False, bind=True, max_retries=None)
def send_batch(self: Task, channel: str, notification_ids: list[int]) -> dict[str, int]:
    """Many rows of one channel per message: the broker's per-message cost is the bottleneck."""
    rt = runtime(app.settings)
    try:
        results = deliver_many(rt, [int(i) for i in notification_ids], Channel(channel))
    except TRANSIENT as exc:
        raise _outage_retry(self, rt, exc) from exc
    _OUTAGE.ended()
    single = SEND_ONE[Channel(channel)]
    for nid, outcome in results:
        if outcome.status is TaskResult.DEFERRED:
            _come_back(nid, Channel(channel), outcome)
        elif outcome.retry_in is not None:
            # Back to `pending`; each row retries on its own schedule as a single task.
            app.send_task(single, args=[nid], countdown=outcome.retry_in, ignore_result=True)
    return dict(Counter(outcome.status for _, outcome in results))


@app.task(name=task_names.SEND_SMS, shared=False, bind=True, max_retries=None)
def send_sms(self: Task, notification_id: int, slot: float | None = None) -> str:
    """`slot`: the send-rate slot (epoch seconds) a row brought back at its turn holds."""
    return _run(self, notification_id, Channel.SMS, None if slot is None else float(slot))


@app.task(name=task_names.SEND_PUSH, shared=False, bind=True, max_retries=None)
def send_push(self: Task, notification_id: int) -> str:
    return _run(self, notification_id, Channel.PUSH)
