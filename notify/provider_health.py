"""What our own tables say about each SMS provider lately (tasks/health.py weighs it)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from schemas import AttemptOutcome
from schemas.receipts import SETTLES

ERROR_WINDOW = 60.0
MIN_ERRORS = 5
ERROR_SHARE = 0.25
# The window slow delivery is judged over, in thresholds (Notify: 15 minutes for 5).
SLOW_WINDOW_THRESHOLDS = 3.0
MIN_JUDGED = 10
SLOW_SHARE = 0.15


@dataclass(frozen=True, slots=True)
class Evidence:
    """One provider's recent record, from notification_attempts and its receipts."""

    sends: int = 0
    errors: int = 0
    judged: int = 0  # sends old enough, or settled, to say whether delivery was late
    slow: int = 0

    @property
    def erring(self) -> bool:
        return self.errors >= MIN_ERRORS and self.errors >= ERROR_SHARE * self.sends

    @property
    def slow_delivery(self) -> bool:
        return self.judged >= MIN_JUDGED and self.slow >= SLOW_SHARE * self.judged

    @property
    def healthy(self) -> bool:
        return not (self.erring or self.slow_delivery)


_ERRORS = f"""
SELECT provider, count(*) AS sends,
    count(*) FILTER (WHERE outcome IN ('{AttemptOutcome.TRANSIENT_ERROR.value}',
                                       '{AttemptOutcome.CONFIG_ERROR.value}')) AS errors
FROM notification_attempts
WHERE finished_at > now() - make_interval(secs => $2) AND provider = ANY($1::text[])
    AND outcome <> '{AttemptOutcome.LOOKUP_FAILED.value}'
GROUP BY provider
"""

# A send is judged once its final receipt came or it is older than the threshold; it was
# slow if that receipt came (or has not come) later than the threshold after the send.
_SLOW = f"""
SELECT a.provider, count(*) AS judged,
    count(*) FILTER (WHERE COALESCE(r.at, now()) - a.finished_at
                     > make_interval(secs => $3)) AS slow
FROM notification_attempts a
LEFT JOIN LATERAL (
    SELECT min(received_at) AS at FROM notification_receipts r
    WHERE r.notification_id = a.notification_id AND r.provider_status = ANY($4::text[])
) r ON true
WHERE a.finished_at > now() - make_interval(secs => $2) AND a.provider = ANY($1::text[])
    AND a.outcome IN ('{AttemptOutcome.SENT.value}', '{AttemptOutcome.RECONCILED.value}')
    AND (r.at IS NOT NULL OR a.finished_at < now() - make_interval(secs => $3))
GROUP BY a.provider
"""


async def evidence(
    pool: asyncpg.Pool, providers: Sequence[str], slow_seconds: float
) -> dict[str, Evidence]:
    names = list(providers)
    errors = {r["provider"]: r for r in await pool.fetch(_ERRORS, names, ERROR_WINDOW)}
    slow = {
        r["provider"]: r
        for r in await pool.fetch(
            _SLOW, names, SLOW_WINDOW_THRESHOLDS * slow_seconds, slow_seconds, list(SETTLES)
        )
    }
    return {
        p: Evidence(
            sends=errors[p]["sends"] if p in errors else 0,
            errors=errors[p]["errors"] if p in errors else 0,
            judged=slow[p]["judged"] if p in slow else 0,
            slow=slow[p]["slow"] if p in slow else 0,
        )
        for p in names
    }
