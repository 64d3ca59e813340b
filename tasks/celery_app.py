"""The Celery app: configuration only. Reading the environment here connects to nothing."""

from __future__ import annotations

from datetime import timedelta

from celery import Celery

from consumer.settings import Settings


def make_app(settings: Settings | None = None) -> Celery:
    s = settings or Settings.from_env()
    app = Celery("tasks", broker=s.broker_url, backend=s.result_backend)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_default_queue=s.task_queue,
        task_ignore_result=True,  # outcomes live in Postgres
        # At-least-once: ack after the task ran, requeue if the worker died mid-task,
        # and hold one message at a time so a crash strands as little as possible.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Unacked messages come back after this long; keep it above the longest retry delay.
        broker_transport_options={"visibility_timeout": s.visibility_timeout_seconds},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        beat_schedule={
            "dispatch-due": {
                "task": "tasks.dispatch_due",
                "schedule": timedelta(seconds=s.schedule_interval_seconds),
            },
            "sweep": {
                "task": "tasks.sweep",
                "schedule": timedelta(seconds=max(0.5, min(60.0, s.stuck_seconds / 4))),
            },
            "purge": {"task": "tasks.purge", "schedule": timedelta(hours=1)},
        },
    )
    return app
