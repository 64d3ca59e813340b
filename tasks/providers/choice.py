"""Which SMS provider a row goes to: a weighted draw at its first claim, and where it may go
when its provider proved it did not take it. Pure (the draw takes its random source)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

Weights = Mapping[str, float]


def pick(weights: Weights, order: Sequence[str], rng: random.Random | None = None) -> str:
    """A provider drawn by share; when every share is 0, the first in order of preference."""
    shares = [(p, max(0.0, weights.get(p, 0.0))) for p in order]
    total = sum(share for _, share in shares)
    if total <= 0:
        return order[0]
    point = (rng or random).uniform(0, total)
    for provider, share in shares:
        if point < share:
            return provider
        point -= share
    return next(p for p, share in reversed(shares) if share > 0)


def failover_target(current: str | None, order: Sequence[str], weights: Weights) -> str | None:
    """Where a row goes after `current` refused it: the other provider with the largest share
    now, ties to the preferred; None when there is no other."""
    others = [p for p in order if p != current]
    if not others:
        return None
    return max(others, key=lambda p: (weights.get(p, 0.0), -order.index(p)))
