"""Beat's periodic tasks: dispatch due reminders, sweep stuck rows, purge old ones."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from consumer import logs
from consumer.publisher import TASK_NAMES
from schemas import Channel, Notification
from tasks.celery_app_instance import app
from tasks.runtime import Runtime, runtime

log = logs.get("schedule")

BATCH = 500


def enqueue(rows: list[tuple[int, str]]) -> None:
    if not rows:
        return
    with app.producer_or_acquire() as producer:
        for nid, channel in rows:
            app.send_task(TASK_NAMES[channel], args=[nid], producer=producer, ignore_result=True)


@app.task(name="tasks.dispatch_due", shared=False, ignore_result=True)
def dispatch_due() -> int:
    """Due `scheduled` rows -> `pending` + a task; FOR UPDATE SKIP LOCKED keeps two beats apart."""
    rt = runtime()
    total = 0
    while True:
        rows = rt.db.run(
            lambda store: store.dispatch_due(
                now=datetime.now(UTC), stale_seconds=rt.settings.stale_after_seconds, limit=BATCH
            )
        )
        enqueue([(nid, channel) for nid, channel, status in rows if status == "pending"])
        expired = sum(1 for *_, status in rows if status == "failed")
        total += len(rows)
        if rows:
            log.info(
                "dispatched due reminders",
                extra=logs.fields(dispatched=len(rows) - expired, expired=expired),
            )
        if len(rows) < BATCH:
            return total


@app.task(name="tasks.sweep", shared=False, ignore_result=True)
def sweep() -> dict[str, int]:
    """Re-enqueue lost `pending` rows; settle rows a dead worker left `sending`."""
    rt = runtime()
    s = rt.settings
    requeued = rt.db.run(lambda st: st.stuck_pending(older_than=s.stuck_seconds, limit=BATCH))
    enqueue(requeued)
    stuck = rt.db.run(lambda st: st.stuck_sending(older_than=s.stuck_seconds, limit=BATCH))
    counts = Counter(settle(rt, row) for row in stuck)
    if requeued or stuck:
        log.warning("sweeper acted", extra=logs.fields(requeued=len(requeued), **counts))
    return {"requeued": len(requeued), **counts}


def settle(rt: Runtime, row: Notification) -> str:
    """The one unrecorded window: the provider may have accepted before the worker died.

    SMS: ask Twilio for a message with this body to this number since the claim; found ->
    `sent` with its SID, not found -> `pending` again (safe to send). Push: FCM has no
    lookup, so the row fails as `outcome_unknown` rather than risk a second push.
    """
    if row.channel is Channel.SMS:
        since = (row.updated_at or datetime.now(UTC)) - timedelta(minutes=5)
        try:
            sid = rt.sms.find_sent(row.recipient, row.body, since)
        except Exception as exc:  # noqa: BLE001 - try again at the next sweep
            log.warning(
                "reconciliation lookup failed",
                extra=logs.fields(
                    notification_id=row.id, error=f"{type(exc).__name__}: {exc}"[:300]
                ),
            )
            return "deferred"
        if sid is not None:
            _resolve(rt, row, status="sent", outcome="reconciled", provider_message_id=sid)
            return "reconciled"
        if _resolve(
            rt, row, status="pending", outcome="not_received", error_code="worker_lost",
            error_message="worker stopped before the provider call",
        ):  # fmt: skip
            enqueue([(row.id, row.channel.value)])
        return "resent"
    _resolve(
        rt, row, status="failed", outcome="unknown", error_code="outcome_unknown",
        error_message="worker stopped during the provider call; not resent",
    )  # fmt: skip
    return "unknown"


def _resolve(rt: Runtime, row: Notification, **fields: str) -> bool:
    """Settle a stuck row unless someone touched it since the sweeper looked."""
    return bool(rt.db.run(lambda st: st.resolve_sending(row, **fields)))


@app.task(name="tasks.purge", shared=False, ignore_result=True)
def purge() -> int:
    """Retention: delete finished rows older than NOTIFY_RETENTION_DAYS, in batches."""
    rt = runtime()
    total = 0
    while True:
        deleted = rt.db.run(
            lambda st: st.delete_older_than(days=rt.settings.retention_days, limit=5000)
        )
        total += deleted
        if deleted < 5000:
            return total
