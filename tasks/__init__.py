"""Celery app and tasks: `celery -A tasks worker` and `celery -A tasks beat`."""

from tasks import signals as _signals  # noqa: F401 - registers worker hooks
from tasks.app import app
from tasks.channels import send_push, send_sms
from tasks.prices import backfill_prices
from tasks.receipts import look_up_receipts
from tasks.schedule import dispatch_due, keep_partitions, purge, sweep
from tasks.weights import weigh_sms_providers

__all__ = [
    "app",
    "backfill_prices",
    "dispatch_due",
    "keep_partitions",
    "look_up_receipts",
    "purge",
    "send_push",
    "send_sms",
    "sweep",
    "weigh_sms_providers",
]
