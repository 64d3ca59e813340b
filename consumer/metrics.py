"""The consumer's Prometheus metrics (docs/interfaces.md section 5). Nothing is served at import.

Lag and pending are notify/stream_gauges.py's, shared with the workers.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Histogram, Info

from notify import skips
from schemas import Channel, DeadLetterReason, Status

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
CONSUMERS_REAPED = Counter(
    "notify_consumers_reaped_total",
    "Consumers removed from the group: idle past NOTIFY_CONSUMER_REAP_SECONDS, nothing pending",
)
CANCELLED = Counter("notify_notifications_cancelled_total", "Scheduled rows cancelled by events")
STREAM_RESETS = Counter(
    "notify_stream_resets_total",
    "Times the stream or its consumer group vanished and the group was recreated",
    ["stream", "group"],
)

# Every label value we can know in advance is exported at 0 from the start: a series that
# first appears at 1 is invisible to increase(), so the first event after a restart would be.
# `no_notifications`: a rule listens to the type, yet none produced a notification (its
# condition was false, or `to` rendered nobody); `unmatched` stays "no rule listens".
NO_NOTIFICATIONS = "no_notifications"
EVENT_OUTCOMES = ("routed", "unmatched", NO_NOTIFICATIONS, "duplicate")
INSERTED_STATUSES = (Status.PENDING, Status.SCHEDULED, Status.FAILED, Status.SKIPPED)


def start_at_zero() -> None:
    """The label values that do not depend on the rules."""
    for reason in DeadLetterReason:
        DEAD_LETTERS.labels(reason=reason)
    EVENTS.labels(type="", outcome="invalid")  # dead letters have no trustworthy type
    for channel in Channel:
        for status in INSERTED_STATUSES:
            NOTIFICATIONS_INSERTED.labels(channel, status)
    for result in ("ok", "error"):
        RULES_RELOADS.labels(result=result)
    skips.start_at_zero()


def start_types_at_zero(event_types: Iterable[str]) -> None:
    """Event types the rules name literally (a glob names no type we could know)."""
    for event_type in event_types:
        for outcome in EVENT_OUTCOMES:
            EVENTS.labels(type=event_type, outcome=outcome)
