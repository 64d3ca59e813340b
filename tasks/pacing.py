"""Waiting for the sender's turn: send at once, after a short nap, or go back to `pending`.

Claimed SMS rows get their send slots from the limiter in one round trip. A row whose slot
is at most `NAP` away waits on its sender thread; a later one is released (back to `pending`,
its claim undone: waiting is neither an error nor an attempt) and comes back at its slot as
`tasks.send_sms(id, slot)`, which sends without asking the limiter again. A slot further
ahead than a task may safely wait in the broker (`horizon`) stays on the row (`slot_at`) and
beat hands it out shortly before, as it does for scheduled reminders: with the Redis broker a
long countdown would be redelivered every visibility timeout.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis

from notify import logs
from notify.outage import OutageLog
from notify.settings import Settings
from schemas import Channel, Notification
from tasks.classification import backoff
from tasks.db import WorkerStore
from tasks.limiter import SendRate

log = logs.get("pacing")

# The longest a sender thread sleeps for a slot: short enough to keep threads available,
# long enough that a fast sender (a short code at 100/s) rarely goes through the broker.
NAP = 1.0

_OUTAGE = OutageLog("redis", "SMS wait and retry until the send-rate limiter is back")


def horizon(settings: Settings) -> float:
    """The longest wait handed to the broker as a countdown; beat's look-ahead for slots."""
    return min(
        settings.visibility_timeout_seconds / 2, max(30.0, 3 * settings.schedule_interval_seconds)
    )


@dataclass(frozen=True)
class Held:
    """A row sent back to `pending`: its slot (None: reserve again), and the countdown of
    the task that brings it back (None: beat will, from `slot_at`)."""

    row: Notification
    slot: float | None
    countdown: float | None


@dataclass
class Paced:
    ready: list[tuple[Notification, float]] = field(default_factory=list)  # (row, go at)
    held: list[Held] = field(default_factory=list)


def split(rows: Sequence[Notification], slots: Sequence[float], now: float, far: float) -> Paced:
    """Pure: which rows go now (at their slot, within a nap) and which wait, and how."""
    paced = Paced()
    for row, slot in zip(rows, slots, strict=True):
        wait = slot - now
        if wait <= NAP:
            paced.ready.append((row, slot))
        else:
            paced.held.append(Held(row, slot, wait if wait <= far else None))
    return paced


def pace(
    rates: Mapping[str, SendRate],
    db: WorkerStore,
    settings: Settings,
    rows: Sequence[Notification],
    slot: float | None = None,
) -> Paced:
    """Reserve slots for claimed rows on their provider's sender's schedule (or use the one a
    task already holds) and release the rows that must wait. Push, and SMS of a provider
    without a configured rate, go at once."""
    now = time.time()
    paced = Paced()
    by_rate: dict[str, list[Notification]] = {}
    for row in rows:
        provider = (row.provider or "twilio") if row.channel is Channel.SMS else None
        if provider is None or provider not in rates:
            paced.ready.append((row, now))
        else:
            by_rate.setdefault(provider, []).append(row)
    for provider, sms in by_rate.items():
        decided = _pace_sender(rates[provider], db, settings, sms, slot, now)
        paced.ready.extend(decided.ready)
        paced.held.extend(decided.held)
    return paced


def _pace_sender(
    rate: SendRate,
    db: WorkerStore,
    settings: Settings,
    sms: Sequence[Notification],
    slot: float | None,
    now: float,
) -> Paced:
    if slot is not None:
        slots = [slot] * len(sms)  # a task brought back at its reserved slot
    else:
        try:
            slots = [now + wait for wait in rate.reserve([r.body for r in sms])]
            _OUTAGE.ended()
        except redis.RedisError as exc:
            _OUTAGE.started(exc)
            again = backoff(1, base=settings.retry_base_seconds, cap=settings.retry_max_seconds)
            held = [Held(r, None, again) for r in sms]
            _release(db, held, now)
            return Paced(held=held)
    decided = split(sms, slots, now, horizon(settings))
    _release(db, decided.held, now)
    return decided


def _release(db: WorkerStore, held: list[Held], now: float) -> None:
    if not held:
        return
    db.release(
        [(h.row.id, h.row.attempts, _at(h.slot) if h.countdown is None else None) for h in held]
    )
    log.debug("waiting for the sender's turn", extra=logs.fields(rows=len(held)))


def _at(epoch: float | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, UTC)


def nap_until(at: float) -> None:
    """Sleep on this sender thread until `at` (never more than NAP)."""
    wait = at - time.time()
    if wait > 0:
        time.sleep(min(wait, NAP))
