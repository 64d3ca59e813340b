"""`notify webhooks` metrics (docs/interfaces.md section 5), served on its own GET /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from schemas.receipts import PROVIDER_STATUSES

ROUTES = ("status", "inbound", "vonage_status", "vonage_inbound")
REASONS = (
    "missing_signature",
    "bad_signature",
    "tampered",
    "too_large",
    "malformed",
    "unsupported_media_type",
)

RECEIPTS = Counter(
    "notify_receipts_total",
    "Signed delivery receipts recorded, by channel and provider status (duplicates included)",
    ["channel", "status"],
)
UNMATCHED = Counter(
    "notify_receipts_unmatched_total",
    "Receipts for a SID no row had recorded yet (kept, applied when it lands)",
)
# From the event's time to the receipt that said delivered: what the customer waits.
DELIVERY_SECONDS = Histogram(
    "notify_delivery_seconds",
    "Event time to delivery receipt",
    ["channel"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
)
REJECTED = Counter(
    "notify_webhook_rejected_total", "Requests refused, by route and reason", ["route", "reason"]
)
INBOUND = Counter("notify_inbound_messages_total", "Signed inbound SMS recorded (new ones)")
UNAVAILABLE = Counter(
    "notify_webhook_unavailable_total",
    "Requests answered 503 because Postgres could not record them",
    ["route"],
)

for _status in (*sorted(PROVIDER_STATUSES), "other"):
    RECEIPTS.labels("sms", _status)
DELIVERY_SECONDS.labels("sms")
for _route in ROUTES:
    UNAVAILABLE.labels(_route)
    for _reason in REASONS:
        REJECTED.labels(_route, _reason)
