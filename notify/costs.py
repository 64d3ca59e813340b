"""What SMS cost, in Postgres: rows held back by the country breaker, the price backfill,
and the spend report (`notify report spend`, the console's spend panel).

Kept beside the outcome store (which delegates here), as notify/slots.py is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg
import msgspec
from prometheus_client import Counter

from schemas import Status

_SENDING, _SKIPPED = f"'{Status.SENDING.value}'", f"'{Status.SKIPPED.value}'"
# The statuses a message reaches once a provider took it: the rows that may have a price.
_TAKEN = f"('{Status.SENT.value}', '{Status.DELIVERED.value}', '{Status.UNDELIVERED.value}')"
GROUPINGS = ("rule", "country", "day")

# Counted by whichever process records a price: beat's Twilio backfill, or the webhook
# receiver for a provider whose status callback carries it (one counter for both sides).
SMS_PRICE = Counter(
    "notify_sms_price_total",
    "What sent SMS cost, as providers report it (often hours later)",
    ["rule", "country", "currency"],
)


async def hold_back(
    pool: asyncpg.Pool, held: Sequence[tuple[int, int]], code: str, message: str
) -> int:
    """Claimed rows that must not be sent (a paused country): `skipped` with `code`, and the
    claim undone (its attempt row removed, `attempts` back): no provider call was made."""
    if not held:
        return 0
    ids, attempts = (list(x) for x in zip(*held, strict=True))
    result = await pool.execute(
        f"""WITH r AS (SELECT * FROM unnest($1::bigint[], $2::int[]) AS r(id, attempt)),
           gone AS (
               DELETE FROM notification_attempts a USING r
               WHERE a.notification_id = r.id AND a.attempt = r.attempt
                 AND a.finished_at IS NULL)
           UPDATE notifications n SET status = {_SKIPPED}, attempts = n.attempts - 1,
               error_code = $3, error_message = $4, updated_at = now()
           FROM r WHERE n.id = r.id AND n.status = {_SENDING} AND n.attempts = r.attempt""",
        ids,
        attempts,
        code,
        message,
    )
    # OUTBOX: `notification.skipped` for each row moved (the update trigger).
    return int(result.split()[-1])


class Unpriced(msgspec.Struct, frozen=True):
    """A Twilio message whose price is not known yet."""

    notification_id: int
    provider_message_id: str
    rule: str
    country: str | None


async def unpriced(
    pool: asyncpg.Pool, *, limit: int, interval_seconds: float, max_lookups: int
) -> list[Unpriced]:
    """Up to `limit` sent Twilio SMS without a price, least recently asked first, each asked
    at most once per interval and at most `max_lookups` times. Marked as asked here, so two
    beats do not ask for the same rows."""
    records = await pool.fetch(
        f"""WITH due AS (
               SELECT id FROM notifications
               WHERE channel = 'sms' AND price IS NULL AND provider_message_id IS NOT NULL
                 -- Twilio's message SIDs; another provider reports its price itself.
                 AND (provider_message_id LIKE 'SM%' OR provider_message_id LIKE 'MM%')
                 AND status IN {_TAKEN} AND price_lookups < $3
                 AND (price_checked_at IS NULL
                      OR price_checked_at < now() - make_interval(secs => $2))
               ORDER BY price_checked_at NULLS FIRST, id LIMIT $1
               FOR UPDATE SKIP LOCKED)
           UPDATE notifications n SET price_checked_at = now(),
               price_lookups = n.price_lookups + 1
           FROM due WHERE n.id = due.id
           RETURNING n.id, n.provider_message_id, n.rule, n.country""",
        limit,
        interval_seconds,
        max_lookups,
    )
    return [Unpriced(r["id"], r["provider_message_id"], r["rule"], r["country"]) for r in records]


class Price(msgspec.Struct, frozen=True):
    """What the provider charged for one message: positive, in `unit` (e.g. USD)."""

    provider_message_id: str
    price: Decimal
    unit: str


class Priced(msgspec.Struct, frozen=True):
    """A row priced just now, for notify_sms_price_total."""

    rule: str
    country: str
    unit: str
    price: Decimal


async def record_prices(pool: asyncpg.Pool, prices: Sequence[Price]) -> list[Priced]:
    """Set each message's price once (a later report of the same message changes nothing);
    returns the rows priced now. Also what a provider whose price comes with its status
    callback (Vonage's `usage`) calls."""
    if not prices:
        return []
    records = await pool.fetch(
        """UPDATE notifications n SET price = p.price, price_unit = p.unit
           FROM unnest($1::text[], $2::numeric[], $3::text[]) AS p(sid, price, unit)
           WHERE n.provider_message_id = p.sid AND n.channel = 'sms' AND n.price IS NULL
           RETURNING n.rule, n.country, n.price_unit, n.price""",
        [p.provider_message_id for p in prices],
        [p.price for p in prices],
        [p.unit for p in prices],
    )
    return [Priced(r["rule"], r["country"] or "", r["price_unit"], r["price"]) for r in records]


def count_prices(priced: Sequence[Priced]) -> None:
    """notify_sms_price_total for the rows `record_prices` just priced."""
    for p in priced:
        SMS_PRICE.labels(p.rule, p.country, p.unit).inc(float(p.price))


class SpendRow(msgspec.Struct, frozen=True):
    """One group of `notify report spend`: SMS, segments, and price per currency."""

    group: str
    messages: int
    segments: int
    priced: int  # messages whose price is known
    price: dict[str, Decimal]  # currency -> total


_GROUP_SQL = {
    "rule": "rule",
    "country": "COALESCE(country, '?')",
    "day": "to_char(date_trunc('day', created_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD')",
}


async def spend(
    db: asyncpg.Pool | asyncpg.Connection, *, since: timedelta, by: str
) -> list[SpendRow]:
    """SMS handed to a provider in the last `since`, grouped by rule, country or UTC day.
    The console's spend panel calls this too."""
    if by not in _GROUP_SQL:
        raise ValueError(f"group by one of {GROUPINGS}, not {by!r}")
    records = await db.fetch(
        f"""SELECT {_GROUP_SQL[by]} AS grp, price_unit, count(*) AS messages,
               COALESCE(sum(segments), 0) AS segments, count(price) AS priced,
               sum(price) AS price
           FROM notifications
           WHERE channel = 'sms' AND created_at >= $1 AND status IN {_TAKEN}
           GROUP BY 1, 2 ORDER BY 1, 2""",
        datetime.now().astimezone() - since,
    )
    rows: dict[str, SpendRow] = {}
    for r in records:
        old = rows.get(r["grp"], SpendRow(r["grp"], 0, 0, 0, {}))
        price = dict(old.price)
        if r["price_unit"] is not None and r["price"] is not None:
            price[r["price_unit"]] = price.get(r["price_unit"], Decimal(0)) + r["price"]
        rows[r["grp"]] = SpendRow(
            r["grp"],
            old.messages + r["messages"],
            old.segments + r["segments"],
            old.priced + r["priced"],
            price,
        )
    return list(rows.values())


@dataclass(frozen=True)
class Totals:
    messages: int
    segments: int
    price: dict[str, Decimal]


def totals(rows: Sequence[SpendRow]) -> Totals:
    price: dict[str, Decimal] = {}
    for row in rows:
        for unit, amount in row.price.items():
            price[unit] = price.get(unit, Decimal(0)) + amount
    return Totals(sum(r.messages for r in rows), sum(r.segments for r in rows), price)
