"""Worker metrics (CONTRACT section 5), one registry for every pool process.

Threads pool (recommended): tasks run in the worker process, which serves /metrics itself.
Prefork: set PROMETHEUS_MULTIPROC_DIR before the worker starts; children write files there,
the parent wipes it at start, serves the merged view and marks exited children dead.
"""

from __future__ import annotations

import os
import shutil

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)

from notify.settings import Settings

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)

NOTIFICATIONS = Counter(
    "notify_notifications_total",
    "Provider outcomes by channel and status (sent/failed/retried)",
    ["channel", "status"],
)
SEND_SECONDS = Histogram(
    "notify_send_seconds", "Provider call latency", ["channel"], buckets=LATENCY_BUCKETS
)
RETRIES = Counter("notify_retries_total", "Retries scheduled, by error code", ["channel", "code"])
PROVIDER_ERRORS = Counter(
    "notify_provider_errors_total", "Provider errors by code and kind", ["channel", "code", "kind"]
)
ATTEMPTS = Histogram(
    "notify_attempts_per_notification",
    "Provider calls a notification needed to finish",
    ["channel"],
    buckets=(1, 2, 3, 4, 5, 7, 10),
)

# The send-rate limiter (tasks/limiter.py), per sender (a phone number or Messaging Service).
SLOT_WAIT = Histogram(
    "notify_sms_slot_wait_seconds",
    "How long an SMS waits for its sender's next free slot, when the slot is reserved",
    ["sender"],
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 10800, 36000),
)
LIMITER_CALLS = Counter(
    "notify_sms_limiter_calls_total", "Round trips to Redis to reserve send slots", ["sender"]
)
# Exported so the backlog alert needs no thresholds of its own (deploy/prometheus/alerts.yml).
SEGMENT_RATE = Gauge(
    "notify_sms_segments_per_second",
    "Configured SMS segments per second for the sender",
    ["sender"],
    multiprocess_mode="max",
)
QUEUED_SEGMENTS = Gauge(
    "notify_sms_queued_segments",
    "SMS segments pending or sending (estimated from a sample of bodies when many)",
    ["sender"],
    multiprocess_mode="max",
)
BACKLOG_ALERT_SECONDS = Gauge(
    "notify_sms_backlog_alert_seconds",
    "Alert when the sender's queue would take longer than this to drain",
    ["sender"],
    multiprocess_mode="max",
)


def reset_multiprocess_dir(settings: Settings) -> None:
    """Stale files from a previous run would be summed into this one's counters."""
    path = settings.prometheus_multiproc_dir
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)


def serve(settings: Settings) -> None:
    """Serve /metrics from the worker's main process (merged across children if prefork)."""
    port = settings.worker_metrics_port
    if not port:
        return
    if settings.prometheus_multiproc_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        start_http_server(port, registry=registry)
    else:
        start_http_server(port)


def child_exited(settings: Settings, pid: int) -> None:
    if settings.prometheus_multiproc_dir:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
