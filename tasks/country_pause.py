"""The pumping breaker in the workers: claimed SMS to a paused country are held back.

Asked after the claim and before the provider call (notify/country_breaker.py decides,
atomically across every worker). A held-back row is `skipped` / `country_paused`, its claim
undone, no provider called. If Redis cannot answer, SMS go out (logged): the breaker
guards spend, and stopping every SMS on a Redis blip would cost more than it saves.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from notify import logs, skips
from notify.countries import country_of
from notify.country_breaker import COUNTRY_PAUSED, CountryBreaker
from schemas import Channel, Notification
from tasks import metrics
from tasks.db import WorkerStore

log = logs.get("delivery")


def split(
    breaker: CountryBreaker, rows: Sequence[Notification]
) -> tuple[list[Notification], dict[str, list[Notification]]]:
    """The rows that may be sent, and those held back by country."""
    by_country: dict[str, list[Notification]] = {}
    send: list[Notification] = []
    for row in rows:
        country = row.country or (country_of(row.recipient) if row.channel is Channel.SMS else None)
        if row.channel is Channel.SMS and country:
            by_country.setdefault(country, []).append(row)
        else:
            send.append(row)
    held: dict[str, list[Notification]] = {}
    for country, group in by_country.items():
        try:
            admitted = breaker.admit(country, [max(1, row.segments or 1) for row in group])
        except redis.RedisError as exc:
            log.warning("country breaker unreachable; sending", extra=logs.fields(
                country=country, error=f"{type(exc).__name__}: {exc}"))  # fmt: skip
            admitted = [True] * len(group)
        send.extend(row for row, ok in zip(group, admitted, strict=True) if ok)
        stopped = [row for row, ok in zip(group, admitted, strict=True) if not ok]
        if stopped:
            held[country] = stopped
    return send, held


def hold_back(db: WorkerStore, held: dict[str, list[Notification]], limit: int) -> list[int]:
    """Record the held-back rows as skipped, count and log them; returns their ids."""
    ids: list[int] = []
    for country, rows in held.items():
        message = f"{country} reached {limit} SMS segments in the last hour"
        db.hold_back([(row.id, row.attempts) for row in rows], COUNTRY_PAUSED, message)
        skips.SKIPPED.labels(Channel.SMS.value, COUNTRY_PAUSED).inc(len(rows))
        metrics.COUNTRY_PAUSED.labels(country).inc(len(rows))
        log.warning(
            "skipped: country paused", extra=logs.fields(country=country, notifications=len(rows))
        )
        ids.extend(row.id for row in rows)
    return ids
