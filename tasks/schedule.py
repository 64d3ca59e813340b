"""Beat's periodic tasks: dispatch due reminders, sweep stuck rows, keep partitions, purge."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

from notify import logs, skips, task_names
from notify.task_names import SEND_ONE
from schemas import SUPPRESSED, AttemptOutcome, Channel, Notification, Resolution, Status
from tasks import metrics, pacing
from tasks.app import app
from tasks.delivery import find_earlier_sms
from tasks.reconcile import LookupFailed
from tasks.runtime import Runtime, runtime

log = logs.get("schedule")

BATCH = 500


def enqueue(rows: list[tuple[int, Channel]]) -> None:
    if not rows:
        return
    with app.producer_or_acquire() as producer:
        for nid, channel in rows:
            app.send_task(SEND_ONE[channel], args=[nid], producer=producer, ignore_result=True)


def hand_out_slots(rt: Runtime) -> int:
    """Pending SMS waiting for a send slot too far ahead for a broker countdown: a task each
    shortly before its slot, holding the slot (tasks/pacing.py)."""
    within = pacing.horizon(rt.settings)
    total = 0
    while True:
        rows = rt.db.due_slots(within=within, limit=BATCH)
        now = time.time()
        with app.producer_or_acquire() as producer:
            for nid, channel, slot_at in rows:
                slot = slot_at.timestamp()
                app.send_task(SEND_ONE[channel], args=[nid, slot], producer=producer,
                              countdown=max(0.0, slot - now), ignore_result=True)  # fmt: skip
        total += len(rows)
        if rows:
            log.info("handed out send slots", extra=logs.fields(rows=len(rows)))
        if len(rows) < BATCH:
            return total


@app.task(name=task_names.DISPATCH_DUE, shared=False, ignore_result=True)
def dispatch_due() -> int:
    """Due `scheduled` rows -> `pending` + a task (or `skipped` if the recipient was suppressed
    since); FOR UPDATE SKIP LOCKED keeps two beats apart. Also hands out rows whose send-rate
    slot is near."""
    rt = runtime(app.settings)
    hand_out_slots(rt)
    total = 0
    while True:
        rows = rt.db.dispatch_due(
            now=datetime.now(UTC), stale_seconds=rt.settings.stale_after_seconds, limit=BATCH
        )
        enqueue([(nid, channel) for nid, channel, status in rows if status is Status.PENDING])
        expired = sum(1 for *_, status in rows if status is Status.FAILED)
        suppressed = [channel for _, channel, status in rows if status is Status.SKIPPED]
        for channel in suppressed:
            skips.SKIPPED.labels(channel.value, SUPPRESSED).inc()
        total += len(rows)
        if rows:
            log.info(
                "dispatched due reminders",
                extra=logs.fields(
                    dispatched=len(rows) - expired - len(suppressed),
                    expired=expired,
                    suppressed=len(suppressed),
                ),
            )
        if len(rows) < BATCH:
            return total


@app.task(name=task_names.SWEEP, shared=False, ignore_result=True)
def sweep() -> dict[str, int]:
    """Re-enqueue lost `pending` rows; settle rows a dead worker left `sending`."""
    rt = runtime(app.settings)
    s = rt.settings
    requeued = rt.db.stuck_pending(older_than=s.stuck_seconds, limit=BATCH)
    enqueue(requeued)
    stuck = rt.db.stuck_sending(older_than=s.stuck_seconds, limit=BATCH)
    counts = Counter(settle(rt, row) for row in stuck)
    if requeued or stuck:
        log.warning("sweeper acted", extra=logs.fields(requeued=len(requeued), **counts))
    return {"requeued": len(requeued), **counts}


# settle's fixed verdicts (the others carry a SID or how long Twilio could not tell).
_RESEND = Resolution(
    status=Status.PENDING,
    outcome=AttemptOutcome.NOT_RECEIVED,
    error_code="worker_lost",
    error_message="worker stopped before the provider call",
)
_NOT_RESENT = Resolution(
    status=Status.FAILED,
    outcome=AttemptOutcome.UNKNOWN,
    error_code="outcome_unknown",
    error_message="worker stopped during the provider call; not resent",
)


def settle(rt: Runtime, row: Notification) -> str:
    """The one unrecorded window: the provider may have accepted before the worker died.

    SMS: ask Twilio for a message with this body to this number since the claim (or since
    an earlier unanswered send); found -> `sent` with its SID, not found -> `pending` again
    (safe to send). While Twilio cannot tell, the row waits for the next sweep, for up to
    NOTIFY_RECONCILE_BUDGET_SECONDS, then fails as `outcome_unknown`. Push: FCM has no
    lookup, so the row fails as `outcome_unknown` rather than risk a second push; so does an
    SMS held by a provider without one (Vonage), and it is never sent elsewhere.
    """
    if row.channel is Channel.SMS and rt.has_lookup(row.provider):
        claimed = row.updated_at or datetime.now(UTC)  # a `sending` row's last touch: its claim
        since = min(claimed, row.unsure_since or claimed)
        try:
            sid = find_earlier_sms(rt, row, since)
        except LookupFailed as exc:
            waited = (datetime.now(UTC) - since).total_seconds()
            log.warning(
                "reconciliation lookup failed",
                extra=logs.fields(notification_id=row.id, error=str(exc), waited=round(waited)),
            )
            if waited < rt.settings.reconcile_budget_seconds:
                return "deferred"
            rt.db.resolve_sending(
                row,
                Resolution(
                    status=Status.FAILED,
                    outcome=AttemptOutcome.UNKNOWN,
                    error_code="outcome_unknown",
                    error_message=f"worker stopped during the provider call; for {waited:.0f} s "
                    f"Twilio could not say whether it has the message; not resent",
                ),
            )
            return "unknown"
        if sid is not None:
            rt.db.resolve_sending(
                row,
                Resolution(
                    status=Status.SENT, outcome=AttemptOutcome.RECONCILED, provider_message_id=sid
                ),
            )
            return "reconciled"
        if rt.db.resolve_sending(row, _RESEND):
            enqueue([(row.id, row.channel)])
        return "resent"
    rt.db.resolve_sending(row, _NOT_RESENT)
    return "unknown"


@app.task(name=task_names.PARTITIONS, shared=False, ignore_result=True)
def keep_partitions() -> dict[str, list[str]]:
    """The outcome tables' day partitions: the next days' created ahead, and days wholly
    older than NOTIFY_RETENTION_DAYS dropped (notify/partitions.py)."""
    rt = runtime(app.settings)
    done = rt.db.keep_partitions(retention_days=rt.settings.retention_days)
    if done.newest_end is not None:
        metrics.PARTITIONS_END.set(done.newest_end.timestamp())
    if done.created or done.dropped:
        log.info(
            "partitions kept",
            extra=logs.fields(
                created=[str(d) for d in done.created], dropped=[str(d) for d in done.dropped]
            ),
        )
    if done.busy:
        log.warning(
            "days past retention kept: rows in them are still in flight",
            extra=logs.fields(days=[str(d) for d in done.busy]),
        )
    return {
        "created": [str(d) for d in done.created],
        "dropped": [str(d) for d in done.dropped],
        "busy": [str(d) for d in done.busy],
    }


@app.task(name=task_names.PURGE, shared=False, ignore_result=True)
def purge() -> int:
    """Retention of what is not dropped by day (keep_partitions): the legacy partition's
    finished rows older than NOTIFY_RETENTION_DAYS, in batches; unmatched receipts and
    inbound messages; throttle windows that have ended (the next notification starts a new
    one); and cancellations no reminder can still need."""
    rt = runtime(app.settings)
    while rt.db.forget_expired_throttles(limit=5000) == 5000:
        pass
    while rt.db.forget_cancellations(limit=5000) == 5000:
        pass
    total = 0
    for delete in (rt.db.delete_older_than, rt.db.delete_heard_older_than):
        while True:
            deleted = delete(days=rt.settings.retention_days, limit=5000)
            total += deleted
            if deleted < 5000:
                break
    return total
