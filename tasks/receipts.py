"""Receipts that never came: beat looks `sent` SMS up at Twilio by SID and settles them.

A run makes at most NOTIFY_RECEIPT_LOOKUPS_PER_RUN calls, oldest rows first, and stops at the
first transient answer (HTTP 429 included): the rest wait for the next run, untouched. A row
whose lookup settled nothing (Twilio still says `sent`) goes to the back of the queue, and is
looked up at most MAX_LOOKUPS times; after that it stays `sent`.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from notify import logs, task_names
from schemas import (
    ConfigurationError,
    PermanentDeliveryError,
    Receipt,
    ReceiptSource,
    TransientDeliveryError,
)
from tasks import metrics
from tasks.app import app
from tasks.runtime import Runtime, runtime

log = logs.get("receipts")

# A day of hourly lookups at the default timeout; some carriers never report delivery.
MAX_LOOKUPS = 24


@app.task(name=task_names.LOOK_UP_RECEIPTS, shared=False, ignore_result=True)
def look_up_receipts() -> dict[str, int]:
    return look_up(runtime(app.settings))


def look_up(rt: Runtime) -> dict[str, int]:
    s = rt.settings
    due = rt.db.awaiting_receipt(
        older_than=s.receipt_timeout_seconds,
        limit=s.receipt_lookups_per_run,
        max_lookups=MAX_LOOKUPS,
    )
    found: list[Receipt] = []
    looked_up: list[int] = []
    counts: Counter[str] = Counter()
    for row in due:
        try:
            status, code = rt.sms.fetch_status(row.provider_message_id)
        except (TransientDeliveryError, ConfigurationError) as exc:
            # 429, 5xx, a timeout, bad credentials: stop; the next run starts over.
            counts["stopped"] += 1
            level = log.error if isinstance(exc, ConfigurationError) else log.warning
            level(
                "receipt lookups stopped",
                extra=logs.fields(error_code=exc.code, looked_up=len(looked_up), due=len(due)),
            )
            break
        except PermanentDeliveryError:
            counts["not_found"] += 1  # counts as a lookup: it must not be asked forever
            looked_up.append(row.notification_id)
            continue
        looked_up.append(row.notification_id)
        found.append(
            Receipt(
                provider_message_id=row.provider_message_id,
                provider_status=status,
                error_code=code,
                received_at=datetime.now(UTC),
                source=ReceiptSource.LOOKUP,
                notification_id=row.notification_id,
            )
        )
    settled = rt.db.record_lookups(found, looked_up) if looked_up else []
    counts["settled"] = len(settled)
    counts["unsettled"] = len(found) - len(settled)
    for result, n in counts.items():
        metrics.RECEIPT_LOOKUPS.labels(result).inc(n)
    for moved in settled:
        log.info(
            "settled by lookup",
            extra=logs.fields(
                notification_id=moved.notification_id,
                status=moved.status.value,
                error_code=moved.error_code,
                provider_message_id=moved.provider_message_id,
            ),
        )
    return dict(counts)
