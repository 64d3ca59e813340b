"""SMS providers' health from our own data, and the traffic shares that follow from it.

As GOV.UK Notify does it (alphagov/notifications-api, app/celery/scheduled_tasks.py): a
provider that errs, or whose delivery receipts come late, loses points of the 100 shared out
among the providers, and the healthy ones gain them; once all are healthy again the points
drift back to the configured shares, a few at a time. The evidence (notify/provider_health.py):

- erring: at least `MIN_ERRORS` refused or failed sends (transient or configuration errors)
  in the last `ERROR_WINDOW` seconds, making up at least `ERROR_SHARE` of its sends;
- slow: of its SMS sent in the last `SLOW_WINDOW_THRESHOLDS` x NOTIFY_SMS_SLOW_DELIVERY_SECONDS
  that are settled or old enough to judge, at least `SLOW_SHARE` got their final receipt more
  than that threshold after the send, or have none yet (Notify: 15% of the last 15 minutes'
  SMS over 5 minutes).

`reweigh` is pure; the beat task `weigh_sms_providers` reads the evidence, applies it and
logs every change (tasks/weights.py stores and exports the points).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from notify.provider_health import Evidence

# Points moved per run: an erring provider sheds traffic fast, a slow one as Notify does
# (10 points a run), and recovery is gradual.
ERRING_STEP = 50.0
SLOW_STEP = 10.0
RECOVERY_STEP = 10.0


def reweigh(
    current: Mapping[str, float],
    base: Mapping[str, float],
    evidence: Mapping[str, Evidence],
    order: Sequence[str],
) -> dict[str, float]:
    """The next points (summing to 100) for the providers in `order`."""
    points = _normalised(current, order) if sum(current.values()) > 0 else _normalised(base, order)
    healthy = [p for p in order if evidence.get(p, Evidence()).healthy]
    sick = [p for p in order if p not in healthy]
    if sick and healthy:
        shed = 0.0
        for p in sick:
            step = ERRING_STEP if evidence[p].erring else SLOW_STEP
            moved = min(points[p], step)
            points[p] -= moved
            shed += moved
        for p in healthy:
            points[p] += shed / len(healthy)
        return points
    if sick:  # every provider is unhealthy: moving traffic around would not help
        return points
    # All healthy: drift back to the configured shares.
    target = _normalised(base, order)
    over = {p: points[p] - target[p] for p in order if points[p] > target[p]}
    under = {p: target[p] - points[p] for p in order if points[p] < target[p]}
    budget = min(RECOVERY_STEP, sum(over.values()))
    if budget <= 0:
        return points
    for side, sign in ((over, -1.0), (under, 1.0)):
        total = sum(side.values())
        for p, gap in side.items():
            points[p] += sign * budget * gap / total
    return points


def _normalised(weights: Mapping[str, float], order: Sequence[str]) -> dict[str, float]:
    total = sum(max(0.0, weights.get(p, 0.0)) for p in order)
    if total <= 0:
        return {p: 100.0 if i == 0 else 0.0 for i, p in enumerate(order)}
    return {p: 100.0 * max(0.0, weights.get(p, 0.0)) / total for p in order}
