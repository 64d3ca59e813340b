"""`notify_notifications_skipped_total{channel,reason}`: notifications deliberately not sent.

One counter for both sides, counted where the decision is made: the consumer (rows it stores
`skipped`: `throttled`, or `suppressed` at insert) and the workers (`suppressed` at claim, or
when a reminder falls due). Skipped is not a failure: no failure ratio counts it.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter

from notify.throttles import THROTTLED
from schemas import SUPPRESSED, Channel

SKIPPED = Counter(
    "notify_notifications_skipped_total",
    "Notifications deliberately not sent (not failures), by channel and reason",
    ["channel", "reason"],
)
REASONS = (THROTTLED, SUPPRESSED)


def start_at_zero(reasons: Iterable[str] = REASONS) -> None:
    for channel in Channel:
        for reason in reasons:
            SKIPPED.labels(channel, reason)
