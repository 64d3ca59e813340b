"""The Celery app. Importing it reads no environment and connects to nothing.

`celery -A tasks worker|beat` imports this module; the configuration is built from one
`Settings` the first time Celery reads it (its `on_configure` signal), and the same object is
what tasks and worker hooks use afterwards (`app.settings`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from celery import Celery

from notify import task_names
from notify.brokers import broker_options
from notify.settings import Settings


def celery_config(s: Settings) -> dict[str, Any]:
    return {
        "beat_schedule": _beat_schedule(s),
        "broker_url": s.broker_url,
        "result_backend": s.result_backend,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_default_queue": s.task_queue,
        "task_ignore_result": True,  # outcomes live in Postgres
        # At-least-once: ack after the task ran, requeue if the worker died mid-task,
        # and hold one message at a time so a crash strands as little as possible.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Redis: unacked messages come back after the visibility timeout (keep it above the
        # longest retry delay); RabbitMQ: publisher confirms.
        **broker_options(s.broker_url, s.visibility_timeout_seconds),
        # One beat sends the periodic tasks; a second one stands by (tasks/beat_lock.py).
        "beat_scheduler": "tasks.beat_lock:SingletonScheduler",
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
    }


def _beat_schedule(s: Settings) -> dict[str, Any]:
    schedule: dict[str, Any] = {
        "dispatch-due": {
            "task": task_names.DISPATCH_DUE,
            "schedule": timedelta(seconds=s.schedule_interval_seconds),
        },
        "sweep": {
            "task": task_names.SWEEP,
            "schedule": timedelta(seconds=max(0.5, min(60.0, s.stuck_seconds / 4))),
        },
        "purge": {"task": task_names.PURGE, "schedule": timedelta(hours=1)},
        # Cheap (a catalog read) when there is nothing to do; frequent, so a failure
        # shows in the partition gauge long before a day is missing.
        "partitions": {
            "task": task_names.PARTITIONS,
            "schedule": timedelta(seconds=s.partitions_seconds),
        },
        # Each run makes at most NOTIFY_RECEIPT_LOOKUPS_PER_RUN calls: this bounds the rate.
        "look-up-receipts": {
            "task": task_names.LOOK_UP_RECEIPTS,
            "schedule": timedelta(seconds=max(0.5, min(60.0, s.receipt_timeout_seconds / 4))),
        },
        # Each run makes at most NOTIFY_PRICE_LOOKUPS_PER_RUN calls (tasks/prices.py).
        "backfill-prices": {
            "task": task_names.BACKFILL_PRICES,
            "schedule": timedelta(seconds=max(0.5, min(60.0, s.price_lookup_interval_seconds / 4))),
        },
    }
    if len(s.sms_providers) > 1:  # CONTRACT section 13: traffic follows health
        schedule["weigh-sms-providers"] = {
            "task": task_names.WEIGH_SMS_PROVIDERS,
            "schedule": timedelta(seconds=s.sms_health_interval_seconds),
        }
    return schedule


class NotifyCelery(Celery):  # type: ignore[misc]  # Celery ships no types
    """A Celery app that carries the process's one `Settings`, built on first use."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__("tasks")
        self._settings = settings
        self.on_configure.connect(self._configure, weak=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = Settings.from_env()
        return self._settings

    def _configure(self, sender: Any = None, **_: Any) -> None:
        self.conf.update(celery_config(self.settings))


# Task modules register with shared=False: the tasks belong to this app, not to every
# Celery app built in the same process (tests, embedders).
app = NotifyCelery()
