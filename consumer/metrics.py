"""The consumer's Prometheus metrics (CONTRACT section 5). Nothing is served at import.

Lag and pending are notify/stream_gauges.py's, shared with the workers.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram, Info

EVENTS = Counter("notify_events_total", "Events by outcome", ["type", "outcome"])
DEAD_LETTERS = Counter("notify_dead_letters_total", "Entries dead-lettered, by reason", ["reason"])
BATCH_SECONDS = Histogram(
    "notify_batch_seconds",
    "Time to process one batch, read to ack",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BATCH_SIZE = Histogram(
    "notify_batch_size", "Entries per batch", buckets=(1, 5, 10, 50, 100, 250, 500, 1000)
)
EVENT_AGE = Histogram(
    "notify_event_age_seconds",
    "Now minus the event time, when processed",
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600),
)
RULES = Info("notify_rules", "The rules version in use")
RULES_RELOADS = Counter("notify_rules_reload_total", "Rules reloads by result", ["result"])
NOTIFICATIONS_INSERTED = Counter(
    "notify_notifications_inserted_total",
    "Rows the consumer inserted, by channel and initial status",
    ["channel", "status"],
)
CANCELLED = Counter("notify_notifications_cancelled_total", "Scheduled rows cancelled by events")
