"""Beat's periodic tasks: dispatch due reminders, sweep stuck rows, purge old ones."""

from __future__ import annotations

from datetime import UTC, datetime

from consumer import logs
from tasks.celery_app_instance import app
from tasks.runtime import runtime

log = logs.get("schedule")
_TASKS = {"sms": "tasks.send_sms", "push": "tasks.send_push"}
BATCH = 500


def enqueue(rows: list[tuple[int, str]]) -> None:
    if not rows:
        return
    with app.producer_or_acquire() as producer:
        for nid, channel in rows:
            app.send_task(_TASKS[channel], args=[nid], producer=producer, ignore_result=True)


@app.task(name="tasks.dispatch_due", ignore_result=True)
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


@app.task(name="tasks.sweep", ignore_result=True)
def sweep() -> dict[str, int]:
    """Re-enqueue lost `pending` rows; resolve rows a dead worker left `sending`."""
    rt = runtime()
    s = rt.settings
    requeued = rt.db.run(lambda st: st.stuck_pending(older_than=s.stuck_seconds, limit=BATCH))
    enqueue(requeued)
    resolved = rt.db.run(
        lambda st: st.resolve_stuck_sending(older_than=s.stuck_seconds, limit=BATCH)
    )
    if requeued or resolved:
        log.warning(
            "sweeper acted", extra=logs.fields(requeued=len(requeued), resolved=len(resolved))
        )
    return {"requeued": len(requeued), "resolved": len(resolved)}


@app.task(name="tasks.purge", ignore_result=True)
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
