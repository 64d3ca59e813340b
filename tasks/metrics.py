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

RECEIPT_LOOKUPS = Counter(
    "notify_receipt_lookups_total",
    "Receipt-timeout lookups at Twilio by result (settled, unsettled, not_found, stopped)",
    ["result"],
)
for _result in ("settled", "unsettled", "not_found", "stopped"):
    RECEIPT_LOOKUPS.labels(_result)


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
