"""How long each sender's queue would take to drain: what the backlog alert reads.

The worker's main process samples Postgres every few seconds and exports the queued
segments next to the configured rate and alert horizon, so the alert is one division
(deploy/prometheus/alerts.yml: "at this rate the last SMS goes out in 3 h").
"""

from __future__ import annotations

import asyncio
import statistics
import threading

from notify import logs
from notify.settings import Settings
from notify.store import OutcomeStore
from tasks import metrics
from tasks.limiter import cost

log = logs.get("backlog")

INTERVAL = 15.0
SAMPLE = 500  # bodies read to estimate the segments per message of a large queue


def estimate(waiting: int, bodies: list[str]) -> float:
    """Segments queued: exact when every body was read, else count x the sample's mean."""
    if not waiting or not bodies:
        return 0.0
    if len(bodies) >= waiting:
        return float(sum(cost(b) for b in bodies))
    return waiting * statistics.fmean(cost(b) for b in bodies)


async def _sample(settings: Settings) -> tuple[int, list[str]]:
    store = await OutcomeStore.connect(
        settings.database_url,
        min_size=1,
        max_size=1,
        statement_cache_size=settings.statement_cache_size,
    )
    try:
        return await store.queued_sms(sample=SAMPLE)
    finally:
        await store.close()


def sample(settings: Settings) -> float:
    waiting, bodies = asyncio.run(_sample(settings))
    return estimate(waiting, bodies)


def start(settings: Settings, stop: threading.Event | None = None) -> threading.Thread | None:
    """Export the rate and horizon, and sample the queue in a daemon thread; None without a
    configured rate (no limiter, nothing to drain at a known pace)."""
    sender, rate = settings.sms_sender, settings.sms_segments_per_second
    if not sender or not rate:
        return None
    metrics.SEGMENT_RATE.labels(sender).set(rate)
    metrics.BACKLOG_ALERT_SECONDS.labels(sender).set(settings.sms_backlog_alert_seconds)
    stopping = stop or threading.Event()

    def run() -> None:
        while not stopping.is_set():
            try:
                metrics.QUEUED_SEGMENTS.labels(sender).set(sample(settings))
            except Exception as exc:  # noqa: BLE001 - a missed sample must not stop the next
                log.warning("could not sample the SMS queue", extra=logs.fields(error=str(exc)))
            stopping.wait(INTERVAL)

    thread = threading.Thread(target=run, name="notify-backlog", daemon=True)
    thread.start()
    return thread
