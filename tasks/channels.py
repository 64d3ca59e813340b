"""The channel tasks workers run: `tasks.send_sms` and `tasks.send_push`."""

from __future__ import annotations

from celery import Task

from schemas import Channel
from tasks.celery_app_instance import app
from tasks.delivery import deliver
from tasks.runtime import runtime


def _run(task: Task, notification_id: int, channel: Channel) -> str:
    outcome = deliver(runtime(), int(notification_id), channel)
    if outcome.retry_in is not None:
        # The row is back to `pending`; the retried task claims it again.
        raise task.retry(countdown=outcome.retry_in, max_retries=None)
    return outcome.status


@app.task(name="tasks.send_sms", bind=True)
def send_sms(self: Task, notification_id: int) -> str:
    return _run(self, notification_id, Channel.SMS)


@app.task(name="tasks.send_push", bind=True)
def send_push(self: Task, notification_id: int) -> str:
    return _run(self, notification_id, Channel.PUSH)
