"""What a failed provider call means for its row: a pure decision, apart from its effects.

`decide` reads the error, the row and the settings and returns a `Failure`; the delivery
code then records it, counts it and logs it (tasks/delivery.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from notify.settings import Settings
from schemas import (
    AmbiguousDeliveryError,
    AttemptOutcome,
    Channel,
    DeliveryError,
    Notification,
    Reason,
    RefusedDeliveryError,
    Status,
    TransientDeliveryError,
)
from tasks.classification import Kind, backoff, kind_of, quota_floor, suppression_for

OUTCOMES: dict[Kind, AttemptOutcome] = {
    "transient": AttemptOutcome.TRANSIENT_ERROR,
    "permanent": AttemptOutcome.PERMANENT_ERROR,
    "config": AttemptOutcome.CONFIG_ERROR,
}


@dataclass(frozen=True)
class Failure:
    """The decision: retry after `retry_in` seconds, or stop (`retry_in` None)."""

    kind: Kind
    outcome: AttemptOutcome
    status: Status  # pending (retry) or failed
    retry_in: float | None
    # The next attempt looks the lost send up at the provider before sending again.
    unsure: bool
    # The provider's answer means: never send to this recipient again.
    suppress: Reason | None
    # Refused before acceptance: the provider did not take it, so this one may.
    move_to: str | None = None

    @property
    def retry(self) -> bool:
        return self.retry_in is not None


def decide(
    row: Notification,
    exc: DeliveryError,
    s: Settings,
    *,
    has_lookup: bool = True,
    alternative: str | None = None,
) -> Failure:
    """`has_lookup`: a lost send at this row's provider can be looked up; `alternative`: the
    provider a refused send would move to (None: no other)."""
    kind = kind_of(exc)
    unsure = isinstance(exc, AmbiguousDeliveryError)
    if unsure and row.channel is Channel.SMS and not has_lookup:
        # It may have the message, and nothing can tell: never sent again, anywhere.
        return Failure(kind, AttemptOutcome.UNKNOWN, Status.FAILED, None, True, None)
    # An SMS whose answer was lost is always followed by one more attempt, which looks for
    # it at the provider before it sends again (and sends only within the budget). FCM has
    # no lookup: a push is resent within the budget, tagged so that it replaces the first.
    looks_first = unsure and row.channel is Channel.SMS
    transient = isinstance(exc, TransientDeliveryError)
    if not (looks_first or (transient and row.sends < s.max_send_attempts)):
        dead = suppression_for(row.channel, exc.code, exc.message)
        return Failure(kind, OUTCOMES[kind], Status.FAILED, None, False, dead)
    refused = isinstance(exc, RefusedDeliveryError) and row.channel is Channel.SMS
    if refused and alternative is not None:
        # The other provider's turn comes at once: this one's Retry-After is not about it.
        delay = backoff(1, base=s.retry_base_seconds, cap=s.retry_max_seconds)
        return Failure(kind, OUTCOMES[kind], Status.PENDING, delay, False, None, alternative)
    retry_after = exc.retry_after if isinstance(exc, TransientDeliveryError) else None
    floor = quota_floor(row.channel, exc.code, retry_after, row.attempts,
                        s.quota_retry_base_seconds)  # fmt: skip
    if unsure:
        # A request the provider may still be working on must land before the retry looks.
        floor = max(floor or 0.0, s.provider_timeout_seconds)
    if looks_first:
        # ... and show in the provider's list, which lags recent messages (tasks.reconcile).
        floor = max(floor or 0.0, s.reconcile_wait_seconds)
    delay = backoff(
        row.attempts,
        base=s.retry_base_seconds,
        cap=s.retry_max_seconds,
        retry_after=floor,
        retry_after_cap=s.visibility_timeout_seconds / 2,
    )
    return Failure(kind, OUTCOMES[kind], Status.PENDING, delay, looks_first, None)
