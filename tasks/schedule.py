"""Beat's periodic tasks: dispatch due reminders, sweep stuck rows, keep partitions, purge."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from celery import Celery

from notify import logs, skips, task_names
from notify.settings import Settings
from notify.task_names import SEND_BATCH, SEND_ONE, batches
from schemas import SUPPRESSED, AttemptOutcome, Channel, Notification, Resolution, Status
from tasks import metrics, pacing
from tasks.app import app
from tasks.db import WorkerStore
from tasks.delivery import find_earlier_sms
from tasks.reconcile import LookupFailed
from tasks.runtime import Runtime, runtime

log = logs.get("schedule")

BATCH = 500
# Rows per statement of the due dispatch and the sweep, and per round of publishing: each
# pass goes on in chunks until nothing is left, holding bounded memory and row locks, and
# leaving at most a chunk for the sweeper should the process die between commit and publish.
CHUNK = 5000

# Publishes the tasks of pending rows; returns how many messages it sent.
Publish = Callable[[Sequence[tuple[int, Channel]]], int]


def publisher(celery: Celery, batch_size: int) -> Publish:
    """`send_batch` messages of up to `batch_size` ids per channel (1: a task per row)."""

    def publish(rows: Sequence[tuple[int, Channel]]) -> int:
        if not rows:
            return 0
        with celery.producer_or_acquire() as producer:
            if batch_size <= 1:
                for nid, channel in rows:
                    celery.send_task(SEND_ONE[channel], args=[nid], producer=producer,
                                     ignore_result=True)  # fmt: skip
                return len(rows)
            chunks = batches([(nid, channel.value) for nid, channel in rows], batch_size)
            for channel_name, ids in chunks:
                celery.send_task(SEND_BATCH, args=[channel_name, ids], producer=producer,
                                 ignore_result=True)  # fmt: skip
            return len(chunks)

    return publish


def enqueue(rows: Sequence[tuple[int, Channel]]) -> int:
    return publisher(app, app.settings.task_batch_size)(rows)


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
    """Due `scheduled` rows -> `pending` + their tasks; also hands out rows whose send-rate
    slot is near."""
    rt = runtime(app.settings)
    hand_out_slots(rt)
    return dispatch(rt.db, rt.settings, enqueue)


def dispatch(db: WorkerStore, settings: Settings, publish: Publish) -> int:
    """Every due row, in chunks until none is left: `pending` with `send_batch` tasks (or
    `skipped` if the recipient was suppressed since, `failed` if too late); FOR UPDATE SKIP
    LOCKED keeps concurrent runs apart."""
    total = 0
    while True:
        rows = db.dispatch_due(
            now=datetime.now(UTC), stale_seconds=settings.stale_after_seconds, limit=CHUNK
        )
        publish([(nid, channel) for nid, channel, status in rows if status is Status.PENDING])
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
        if len(rows) < CHUNK:
            return total


def requeue_lost(db: WorkerStore, settings: Settings, publish: Publish) -> int:
    """Every `pending` row whose task was lost, in chunks until none is left (each chunk is
    touched as it is taken, so one pass never takes a row twice)."""
    total = 0
    while True:
        rows = db.stuck_pending(older_than=settings.stuck_seconds, limit=CHUNK)
        publish(rows)
        total += len(rows)
        if len(rows) < CHUNK:
            return total


@app.task(name=task_names.SWEEP, shared=False, ignore_result=True)
def sweep() -> dict[str, int]:
    """Re-enqueue lost `pending` rows, all of them; settle rows a dead worker left `sending`
    (BATCH a run: each may need a provider lookup)."""
    rt = runtime(app.settings)
    s = rt.settings
    requeued = requeue_lost(rt.db, s, enqueue)
    stuck = rt.db.stuck_sending(older_than=s.stuck_seconds, limit=BATCH)
    counts = Counter(settle(rt, row) for row in stuck)
    if requeued or stuck:
        log.warning("sweeper acted", extra=logs.fields(requeued=requeued, **counts))
    return {"requeued": requeued, **counts}


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
    SMS held by a provider without one (Vonage) once its call began (the attempt reached
    `calling`), and it is never sent elsewhere; one whose call never began is resent.
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
    if row.channel is Channel.SMS and not rt.db.called(row.id, row.attempts):
        # The worker died before the call to a provider without lookup: nothing went out.
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
