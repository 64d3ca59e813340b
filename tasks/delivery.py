"""One provider attempt for one notification: claim, call, record, decide whether to retry."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential_jitter

from notify import logs, skips
from notify.country_breaker import COUNTRY_PAUSED
from notify.logs import mask
from notify.outage import TRANSIENT
from notify.store import Finished
from notify.suppressions import NewSuppression
from schemas import (
    SUPPRESSED,
    AttemptOutcome,
    Channel,
    DeliveryError,
    Notification,
    PermanentDeliveryError,
    Provider,
    PushId,
    Status,
    TaskResult,
    TransientDeliveryError,
)
from tasks import country_pause, failures, metrics, pacing, reconcile
from tasks.classification import backoff
from tasks.runtime import Runtime

log = logs.get("delivery")


@dataclass(frozen=True)
class SendResult:
    status: TaskResult
    code: str | None = None
    retry_in: float | None = None
    # DEFERRED: the send slot the row holds (epoch seconds; None: reserve one again).
    slot: float | None = None


def _deferred(held: pacing.Held) -> SendResult:
    return SendResult(TaskResult.DEFERRED, retry_in=held.countdown, slot=held.slot)


@dataclass(frozen=True)
class Freed:
    """A lookup at the row's provider found no earlier send: it never took the message, so
    the row may go to `to` (CONTRACT section 13: failover only on proof)."""

    to: str


def _call_provider(rt: Runtime, row: Notification) -> tuple[str, AttemptOutcome] | Freed:
    """The provider's id for the message and the attempt's outcome (`sent` or `reconciled`),
    or Freed when an earlier unanswered send proved not to have arrived.

    Raises LookupFailed (nothing sent) when Twilio cannot say whether it has an earlier send.
    """
    if row.channel is Channel.SMS:
        sms = rt.sms_provider(row.provider)
        if row.unsure_since is not None:
            if not rt.has_lookup(row.provider):  # `_failed` never leaves such a row to retry
                raise PermanentDeliveryError(
                    "outcome_unknown", f"{row.provider} has no lookup of an unanswered send"
                )
            earlier = find_earlier_sms(rt, row, row.unsure_since)
            if earlier is not None:
                return earlier, AttemptOutcome.RECONCILED
            if row.sends > rt.settings.max_send_attempts:
                # The last allowed send lost its answer and never reached Twilio.
                raise TransientDeliveryError(
                    row.error_code or "connection_error",
                    f"no answer to send {row.sends - 1}, and Twilio does not have it",
                )
            target = rt.failover_target(row.provider)
            if target is not None:
                return Freed(target)
        if not rt.has_lookup(row.provider):
            # Once this is recorded the sweeper never resends a row whose worker died.
            rt.db.mark_calling(row.id, row.attempts)
        return sms.send(row.recipient, row.body), AttemptOutcome.SENT
    data = {str(k): str(v) for k, v in (row.data or {}).items()}
    kind = row.push_id or PushId.TOKEN
    name = rt.push.send(row.recipient, row.title, row.body, data or None, kind, collapse_id(row))
    return name, AttemptOutcome.SENT


def collapse_id(row: Notification) -> str:
    """One per notification: a resend after a lost answer replaces the shown push."""
    return f"notify-{row.id}"


def find_earlier_sms(rt: Runtime, row: Notification, since: datetime) -> str | None:
    """The SID of a message Twilio has for this row from a send begun at or after `since`.

    None when Twilio has none (safe to send); LookupFailed when it cannot tell (never send).
    """
    remaining = reconcile.remaining_wait(
        since, datetime.now(UTC), rt.settings.reconcile_wait_seconds
    )
    if remaining > 0:
        raise reconcile.TooEarly(remaining)
    try:
        found, complete = rt.sms.candidates(row.recipient, row.body, since)
        taken = rt.db.taken([m.sid for m in found], besides=row.id) if found else set()
        return reconcile.choose(found, complete, taken)
    except reconcile.LookupFailed:
        raise
    except Exception as exc:  # noqa: BLE001 - unsure whether it was sent: never send blind
        raise reconcile.LookupFailed(f"{type(exc).__name__}: {exc}"[:300]) from None


def _record(rt: Runtime, finished: Finished) -> None:
    """Recording an outcome must survive a short Postgres blip: the provider call already ran."""
    try:
        rt.db.record(finished)
        return
    except TRANSIENT:
        pass  # only now pay for the retry machinery (it showed in profiles on the happy path)
    for attempt in Retrying(
        retry=retry_if_exception_type(TRANSIENT),
        wait=wait_exponential_jitter(multiplier=0.2, max=5, jitter=0.2),
        stop=stop_after_delay(120),
        reraise=True,
    ):
        with attempt:
            rt.db.record(finished)


def deliver(
    rt: Runtime, notification_id: int, channel: Channel, slot: float | None = None
) -> SendResult:
    """One row; `slot` is the send slot a row brought back by the limiter already holds."""
    row = rt.db.claim(notification_id, _picks(rt, channel, 1)[0])
    if row is None:
        log.info(
            "skipped: not pending (duplicate task or already final)",
            extra=logs.fields(notification_id=notification_id, channel=channel.value),
        )
        return SendResult(TaskResult.SKIPPED)
    if row.status is Status.SKIPPED:
        return _suppressed([row])[0][1]
    if _paused(rt, [row])[1]:
        return SendResult(TaskResult.SKIPPED, COUNTRY_PAUSED)
    paced = pacing.pace(rt.rates, rt.db, rt.settings, [row], slot)
    if paced.held:
        return _deferred(paced.held[0])
    [(ready, at)] = paced.ready
    pacing.nap_until(at)
    return attempt(rt, ready)


def deliver_many(
    rt: Runtime, notification_ids: list[int], channel: Channel
) -> list[tuple[int, SendResult]]:
    """Claim a batch in one statement, then call the provider for each row concurrently."""
    claimed = rt.db.claim_many(notification_ids, _picks(rt, channel, len(notification_ids)))
    rows = [r for r in claimed if r.status is not Status.SKIPPED]
    suppressed = _suppressed([r for r in claimed if r.status is Status.SKIPPED])
    skipped = set(notification_ids) - {r.id for r in claimed}
    if skipped:
        log.info(
            "skipped: not pending (duplicate task or already final)",
            extra=logs.fields(notifications=len(skipped), channel=channel.value),
        )
    rows, paused = _paused(rt, rows)
    suppressed += [(nid, SendResult(TaskResult.SKIPPED, COUNTRY_PAUSED)) for nid in paused]
    paced = pacing.pace(rt.rates, rt.db, rt.settings, rows)
    futures = [(row.id, rt.senders.submit(_at_slot, rt, row, at)) for row, at in paced.ready]
    waiting = [(held.row.id, _deferred(held)) for held in paced.held]
    return [(nid, future.result()) for nid, future in futures] + waiting + suppressed


def _picks(rt: Runtime, channel: Channel, count: int) -> list[str]:
    """The provider each row gets if this is its first claim (a row keeps the one it has)."""
    if channel is Channel.SMS:
        return rt.pick(count)
    return [Provider.FCM.value] * count


def _paused(rt: Runtime, rows: list[Notification]) -> tuple[list[Notification], list[int]]:
    """The rows that may go on, and the ids of those held back by a paused country."""
    limit = rt.settings.sms_country_hourly_segments
    if rt.breaker is None or limit is None:
        return rows, []
    send, held = country_pause.split(rt.breaker, rows)
    return send, country_pause.hold_back(rt.db, held, limit) if held else []


def _suppressed(rows: list[Notification]) -> list[tuple[int, SendResult]]:
    """Rows the claim found suppressed: already `skipped`, no provider call, no attempt."""
    for row in rows:
        skips.SKIPPED.labels(row.channel.value, SUPPRESSED).inc()
        log.info(
            "skipped: recipient suppressed",
            extra=logs.fields(
                notification_id=row.id, rule=row.rule, channel=row.channel.value,
                recipient=mask(row.recipient),
            ),
        )  # fmt: skip
    return [(row.id, SendResult(TaskResult.SKIPPED, SUPPRESSED)) for row in rows]


def _at_slot(rt: Runtime, row: Notification, at: float) -> SendResult:
    pacing.nap_until(at)
    return attempt(rt, row)


def attempt(rt: Runtime, row: Notification) -> SendResult:
    """One provider call for a row this worker has claimed, recorded whatever happens."""
    ctx = {
        "notification_id": row.id,
        "event_id": row.event_id,
        "rule": row.rule,
        "channel": row.channel.value,
        "recipient": mask(row.recipient),
        "attempt": row.attempts,
        "provider": row.provider,
    }
    began = datetime.now(UTC)
    started = time.perf_counter()
    try:
        called = _call_provider(rt, row)
    except reconcile.LookupFailed as exc:
        metrics.SEND_SECONDS.labels(row.channel.value).observe(time.perf_counter() - started)
        return _lookup_failed(rt, row, exc, ctx, began)
    except DeliveryError as exc:
        metrics.SEND_SECONDS.labels(row.channel.value).observe(time.perf_counter() - started)
        return _failed(rt, row, exc, ctx, began)
    except Exception as exc:  # noqa: BLE001 - an SDK surprise is retried, never lost
        metrics.SEND_SECONDS.labels(row.channel.value).observe(time.perf_counter() - started)
        wrapped = TransientDeliveryError("internal_error", f"{type(exc).__name__}: {exc}"[:300])
        return _failed(rt, row, wrapped, ctx, began)
    metrics.SEND_SECONDS.labels(row.channel.value).observe(time.perf_counter() - started)
    if isinstance(called, Freed):
        return _move(rt, row, called.to, ctx, began)
    provider_id, result = called
    _record(rt, Finished(row.id, row.attempts, Status.SENT, result, began, provider_id))
    metrics.NOTIFICATIONS.labels(row.channel.value, TaskResult.SENT).inc()
    metrics.ATTEMPTS.labels(row.channel.value).observe(row.attempts)
    if row.segments:
        metrics.SMS_SEGMENTS.labels(row.rule, row.country or "", row.encoding or "").inc(
            row.segments
        )
    log.info(result, extra=logs.fields(**ctx, provider_message_id=provider_id))
    return SendResult(TaskResult.SENT)


def _failed(
    rt: Runtime, row: Notification, exc: DeliveryError, ctx: dict[str, object], began: datetime
) -> SendResult:
    sms = row.channel is Channel.SMS
    failure = failures.decide(
        row,
        exc,
        rt.settings,
        has_lookup=not sms or rt.has_lookup(row.provider),
        alternative=rt.failover_target(row.provider) if sms else None,
    )
    if failure.outcome is AttemptOutcome.UNKNOWN:
        metrics.PROVIDER_ERRORS.labels(row.channel.value, exc.code, failure.kind).inc()
        return _unknown(rt, row, exc, ctx, began)
    # Recorded with the failed attempt, in its transaction: the provider's word that this
    # recipient must get nothing more is never lost between the two.
    suppress = None
    if failure.suppress is not None:
        source = f"notification:{row.id}"
        suppress = NewSuppression(row.channel, row.recipient, failure.suppress, source)
    _record(
        rt,
        Finished(
            row.id, row.attempts, failure.status, failure.outcome, began,
            error_code=exc.code, error_message=exc.message, unsure=failure.unsure,
            move_to=failure.move_to, suppress=suppress,
        ),
    )  # fmt: skip
    _count_failure(row, exc, failure)
    _log_failure(ctx, exc, failure)
    if failure.retry_in is not None:
        return SendResult(TaskResult.RETRIED, exc.code, failure.retry_in)
    return SendResult(TaskResult.FAILED, exc.code)


def _count_failure(row: Notification, exc: DeliveryError, failure: failures.Failure) -> None:
    channel = row.channel.value
    metrics.PROVIDER_ERRORS.labels(channel, exc.code, failure.kind).inc()
    if failure.move_to is not None:
        metrics.NOTIFICATIONS.labels(channel, TaskResult.RETRIED).inc()
        metrics.FAILOVERS.labels(row.provider or "twilio", failure.move_to, "refused").inc()
    elif failure.retry:
        metrics.NOTIFICATIONS.labels(channel, TaskResult.RETRIED).inc()
        metrics.RETRIES.labels(channel, exc.code).inc()
    else:
        metrics.NOTIFICATIONS.labels(channel, TaskResult.FAILED).inc()
        metrics.ATTEMPTS.labels(channel).observe(row.attempts)


def _log_failure(ctx: dict[str, object], exc: DeliveryError, failure: failures.Failure) -> None:
    if failure.suppress is not None:
        log.warning(
            "recipient suppressed by the provider's answer",
            extra=logs.fields(**ctx, error_code=exc.code, reason=failure.suppress.value),
        )
    if failure.retry_in is not None:
        retry_in = round(failure.retry_in, 2)
        if failure.move_to is not None:
            log.warning(
                "provider refused the send; failing over",
                extra=logs.fields(**ctx, error_code=exc.code, to_provider=failure.move_to,
                                  retry_in=retry_in),
            )  # fmt: skip
        else:
            log.warning(
                "transient error; retrying",
                extra=logs.fields(**ctx, error_code=exc.code, retry_in=retry_in),
            )
    elif failure.kind == "config":
        fields = logs.fields(**ctx, error_code=exc.code, error=exc.message)
        log.error("configuration error: operators must act", extra=fields)
    else:
        log.warning("failed", extra=logs.fields(**ctx, error_code=exc.code, error=exc.message))


def _move(
    rt: Runtime, row: Notification, to: str, ctx: dict[str, object], began: datetime
) -> SendResult:
    """The lookup cleared the earlier unanswered send: the row goes to `to`, at once."""
    _record(
        rt,
        Finished(
            row.id, row.attempts, Status.PENDING, AttemptOutcome.NOT_RECEIVED, began,
            error_code="not_received",
            error_message=f"{row.provider} has no message from the unanswered send; moved to {to}",
            move_to=to,
        ),
    )  # fmt: skip
    metrics.NOTIFICATIONS.labels(row.channel.value, TaskResult.RETRIED).inc()
    metrics.FAILOVERS.labels(row.provider or "twilio", to, "not_received").inc()
    log.warning(
        "lookup found no earlier send; failing over", extra=logs.fields(**ctx, to_provider=to)
    )
    return SendResult(TaskResult.RETRIED, "not_received", 0.0)


def _unknown(
    rt: Runtime, row: Notification, exc: DeliveryError, ctx: dict[str, object], began: datetime
) -> SendResult:
    """A lost answer from a provider with no lookup: it may have the message, and nothing can
    tell, so the row is never sent again, there or anywhere (docs/delivery-guarantees.md)."""
    message = f"no answer from {row.provider} ({exc.code}), which has no lookup; not resent"
    _record(
        rt,
        Finished(
            row.id, row.attempts, Status.FAILED, AttemptOutcome.UNKNOWN, began,
            error_code="outcome_unknown", error_message=message, unsure=True,
        ),
    )  # fmt: skip
    metrics.NOTIFICATIONS.labels(row.channel.value, TaskResult.FAILED).inc()
    log.error("outcome unknown: not resent", extra=logs.fields(**ctx, error=message))
    return SendResult(TaskResult.FAILED, "outcome_unknown")


def _lookup_failed(
    rt: Runtime,
    row: Notification,
    exc: reconcile.LookupFailed,
    ctx: dict[str, object],
    began: datetime,
) -> SendResult:
    """Twilio could not say whether an earlier send arrived: ask again, for a time.

    The attempt sent nothing, so it is not a send (NOTIFY_MAX_SEND_ATTEMPTS); what bounds
    the asking is NOTIFY_RECONCILE_BUDGET_SECONDS from the unanswered send. Past it the row
    fails as `outcome_unknown`: the message may or may not have gone out.
    """
    s = rt.settings
    channel = row.channel.value
    since = row.unsure_since or began
    waited = (datetime.now(UTC) - since).total_seconds()
    early = isinstance(exc, reconcile.TooEarly)
    code = "reconcile_wait" if early else "reconcile_failed"
    if not early:
        metrics.PROVIDER_ERRORS.labels(channel, code, "transient").inc()
    if waited < s.reconcile_budget_seconds:
        _record(
            rt,
            Finished(
                row.id, row.attempts, Status.PENDING, AttemptOutcome.LOOKUP_FAILED, began,
                error_code=code, error_message=f"lookup before resending: {exc}",
                lookup_failed=True,
            ),
        )  # fmt: skip
        # Too early: come back when the list can be trusted (a countdown stays under the
        # broker's visibility timeout; a task back too soon defers again).
        floor = exc.wait if isinstance(exc, reconcile.TooEarly) else None
        delay = backoff(row.lookup_failures + 1, base=s.retry_base_seconds,
                        cap=s.retry_max_seconds, retry_after=floor,
                        retry_after_cap=s.visibility_timeout_seconds / 2)  # fmt: skip
        metrics.NOTIFICATIONS.labels(channel, TaskResult.RETRIED).inc()
        metrics.RETRIES.labels(channel, code).inc()
        log.warning(
            "cannot tell whether Twilio has the earlier send; asking again",
            extra=logs.fields(**ctx, error=str(exc), retry_in=round(delay, 2)),
        )
        return SendResult(TaskResult.RETRIED, code, delay)
    message = f"could not learn from Twilio for {waited:.0f} s whether it was sent: {exc}"
    _record(
        rt,
        Finished(
            row.id, row.attempts, Status.FAILED, AttemptOutcome.UNKNOWN, began,
            error_code="outcome_unknown", error_message=message[:500], lookup_failed=True,
        ),
    )  # fmt: skip
    metrics.NOTIFICATIONS.labels(channel, TaskResult.FAILED).inc()
    metrics.ATTEMPTS.labels(channel).observe(row.attempts)
    log.error("outcome unknown: not resent", extra=logs.fields(**ctx, error=message))
    return SendResult(TaskResult.FAILED, "outcome_unknown")


__all__ = ["PermanentDeliveryError", "SendResult", "deliver", "find_earlier_sms"]
