"""Worker metrics (docs/interfaces.md section 5), one registry for every pool process.

Threads pool (recommended): tasks run in the worker process, which serves /metrics itself.
Prefork: set PROMETHEUS_MULTIPROC_DIR before the worker starts; children write files there,
the parent wipes it at start, serves the merged view and marks exited children dead.

Lag and pending are served here too, so they stay visible while no consumer runs: one
sampler thread in the worker's main process, reported by a collector on the registry that
serves (notify/stream_gauges.py), so they appear once whatever the pool.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Iterable

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)

from notify import skips, suppressions
from notify.country_breaker import COUNTRY_PAUSED as COUNTRY_PAUSED_REASON
from notify.redis_clients import async_client
from notify.segments import ENCODINGS
from notify.settings import Settings
from notify.stream_gauges import READ_TIMEOUT, StreamGauges, sample
from schemas import SUPPRESSED, Channel, TaskResult

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

# CONTRACT section 13: rows moved to another SMS provider, and why (`refused`: no
# connection or a refusal before acceptance; `not_received`: a lookup found no earlier send).
FAILOVERS = Counter(
    "notify_sms_failovers_total",
    "SMS moved from one provider to another, by reason",
    ["from_provider", "to_provider", "reason"],
)

RECEIPT_LOOKUPS = Counter(
    "notify_receipt_lookups_total",
    "Receipt-timeout lookups at Twilio by result (settled, unsettled, not_found, stopped)",
    ["result"],
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


# What SMS cost (CONTRACT section 14): segments as each is sent, prices as providers report.
SMS_SEGMENTS = Counter(
    "notify_sms_segments_total", "SMS segments sent", ["rule", "country", "encoding"]
)
COUNTRY_PAUSED = Counter(
    "notify_sms_country_paused_total",
    "SMS not sent because their country reached NOTIFY_SMS_COUNTRY_HOURLY_SEGMENTS",
    ["country"],
)


def start_cost_at_zero(settings: Settings, rules: Iterable[str]) -> None:
    """The cost series whose label values are known: the SMS rules x NOTIFY_SMS_COUNTRIES
    x encodings (every country is possible when it is unset: those appear with their first)."""
    for country in sorted(settings.sms_countries or ()):
        COUNTRY_PAUSED.labels(country)
        for rule in rules:
            for encoding in ENCODINGS:
                SMS_SEGMENTS.labels(rule, country, encoding)
    if settings.sms_country_hourly_segments is not None:
        skips.start_at_zero([COUNTRY_PAUSED_REASON])


# The alert on a missing partition for tomorrow reads this against time() (alerts.yml).
PARTITIONS_END = Gauge(
    "notify_partitions_end_timestamp_seconds",
    "When the newest day partition of the outcome tables ends (Unix time)",
    multiprocess_mode="max",
)


def start_at_zero() -> None:
    """Export every channel x status (and x skip and suppression reason) at 0, so increase()
    sees the first one after a start.
    (Error codes are open-ended: those series still appear with their first error.)"""
    for channel in Channel:
        for status in (TaskResult.SENT, TaskResult.FAILED, TaskResult.RETRIED):
            NOTIFICATIONS.labels(channel, status)
    for result in ("settled", "unsettled", "not_found", "stopped"):
        RECEIPT_LOOKUPS.labels(result)
    skips.start_at_zero([SUPPRESSED])  # workers skip only for suppressions
    suppressions.start_at_zero()  # added on 21610 and dead push tokens


def reset_multiprocess_dir(settings: Settings) -> None:
    """Stale files from a previous run would be summed into this one's counters."""
    path = settings.prometheus_multiproc_dir
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)


class StreamSampler:
    """A daemon thread with its own event loop and Redis client: it shares nothing with the
    task pool, and a stuck Redis delays no task."""

    def __init__(self, settings: Settings, gauges: StreamGauges) -> None:
        self.settings = settings
        self.gauges = gauges
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="notify-lag", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        self._loop.run_until_complete(self._sample())
        self._loop.close()

    async def _sample(self) -> None:
        client = async_client(self.settings, socket_timeout=READ_TIMEOUT)
        try:
            await sample(client, self.gauges, self._stop)
        finally:
            await client.aclose()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=READ_TIMEOUT + 1)


_gauges: StreamGauges | None = None
_sampler: StreamSampler | None = None


def serve(settings: Settings) -> None:
    """Serve /metrics from the worker's main process (merged across children if prefork)."""
    global _gauges
    port = settings.worker_metrics_port
    if not port:
        return
    registry = REGISTRY
    if settings.prometheus_multiproc_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    _gauges = StreamGauges(settings.stream, settings.group, interval=settings.stream_sample_seconds)
    registry.register(_gauges)
    start_http_server(port, registry=registry)


def start_sampling(settings: Settings) -> None:
    """On worker_ready, which fires in the main process only: one sampler per worker, and
    prefork's first children are forked before its thread, loop and sockets exist."""
    global _sampler
    if _gauges is not None and _sampler is None:
        _sampler = StreamSampler(settings, _gauges)
        _sampler.start()


def stop_sampling() -> None:
    if _sampler is not None:
        _sampler.stop()


def child_exited(settings: Settings, pid: int) -> None:
    if settings.prometheus_multiproc_dir:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
