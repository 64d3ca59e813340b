"""A batch between routing and Postgres: what was prepared, how it is inserted and counted."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from consumer import metrics
from consumer.decisions import Record, decide
from consumer.stream import DeadLetter, Entry
from notify import logs
from notify import skips as notify_skips
from notify.cancellations import Cancel
from notify.inserts import Inserted
from notify.store import OutcomeStore
from rules.routing import Routed
from rules.ruleset import RuleSet
from schemas import Event, NewNotification

log = logs.get("consumer")
# Fewer rows than this go in one statement: splitting them would cost more round trips and
# commits than it saves.
_SPLIT_ROWS = 200


@dataclass(frozen=True)
class RoutedEvent:
    """One event's share of a batch, as `account` counts it."""

    type: str
    id: str
    keys: list[str]
    notifications: list[NewNotification]
    matched: bool  # a rule's `on` matched the type, whether or not it produced anything


@dataclass
class Prepared:
    """A routed batch waiting to be written: rows, cancellations, acks and dead letters."""

    started: float
    size: int
    now: datetime
    ruleset: RuleSet
    cancel_types: re.Pattern[str] | None
    acks: list[str] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    rows: list[NewNotification] = field(default_factory=list)
    cancels: list[Cancel] = field(default_factory=list)
    stale_after: timedelta = timedelta(hours=1)
    per_event: list[RoutedEvent] = field(default_factory=list)
    redelivered: set[str] = field(default_factory=set)
    # "Why not?" records of the events whose rows do not tell it all (consumer/decisions.py).
    decisions: list[Record] = field(default_factory=list)


def gather(batch: Prepared, entry: Entry, event: Event, routed: Routed) -> None:
    """Add a routed event to its batch: its rows, its cancel, its ack."""
    notifications = routed.notifications
    batch.rows.extend(notifications)
    cancel_types = batch.cancel_types
    if event.subject and cancel_types is not None and cancel_types.match(event.type):
        batch.cancels.append(Cancel(event.id, event.type, event.subject, event.time))
    keys = [n.idempotency_key for n in notifications]
    if entry.deliveries > 1:
        batch.redelivered.update(keys)
    rules = batch.ruleset.matching(event.type)
    matched = bool(notifications) or bool(rules)
    batch.per_event.append(RoutedEvent(event.type, event.id, keys, notifications, matched))
    batch.acks.append(entry.id)
    record = decide(event, rules, notifications, batch.ruleset.version)
    if record is not None:
        batch.decisions.append(record)


def share_out(rows: list[NewNotification], parts: int) -> list[list[NewNotification]]:
    """The rows in at most `parts` shares, by (rule, recipient), each in batch order.

    An idempotency key is a hash of (event, rule, recipient) and a throttle group is (rule,
    key, recipient), so each key and each group falls within one share."""
    shares: list[list[NewNotification]] = [[] for _ in range(parts)]
    for row in rows:
        shares[hash((row.rule, row.recipient)) % parts].append(row)
    return [share for share in shares if share]


@dataclass
class BatchResult:
    acked: int = 0
    dead: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


async def insert_shared(
    store: OutcomeStore, rows: list[NewNotification], redelivered: frozenset[str], parts: int
) -> Inserted:
    """Insert the batch's rows; a large batch over several connections at once.

    Postgres inserting the rows was what held a consumer back (about 20 us a row on one
    connection). Rows are shared out by (rule, recipient), so each idempotency key and
    each throttle group (rule, key, recipient) stays within one statement, in batch
    order, exactly as in a single insert. The shares commit separately: if one fails
    after another committed, the batch is not acknowledged and is redelivered, which
    the store already handles (stored keys are skipped, not counted against throttles
    again, and their pending rows re-published), as for a crash between commit and
    publish. Cancels and publishing wait for every share, as before."""
    if parts <= 1 or len(rows) < _SPLIT_ROWS:
        return await store.insert(rows, redelivered)
    inserts = [
        asyncio.ensure_future(store.insert(share, redelivered)) for share in share_out(rows, parts)
    ]
    try:
        results = await asyncio.gather(*inserts)
    except BaseException:
        # A retry must not race the shares still running: stop them, wait, re-raise.
        for task in inserts:
            task.cancel()
        await asyncio.gather(*inserts, return_exceptions=True)
        raise
    return Inserted(
        [row for r in results for row in r.to_publish],
        set().union(*(r.inserted_keys for r in results)),
        sum(r.duplicates for r in results),
        {key: code for r in results for key, code in r.skipped.items()},
    )


def outcome(event: RoutedEvent, fresh: set[str]) -> str:
    """`notify_events_total`'s outcome for one event; takes its keys out of `fresh`, the
    batch's keys not yet counted (a key counts for the first event that produced it)."""
    if not event.keys:
        # A rule listens to the type, but its condition was false or `to` rendered no one.
        return metrics.NO_NOTIFICATIONS if event.matched else "unmatched"
    if fresh.isdisjoint(event.keys):
        return "duplicate"
    fresh.difference_update(event.keys)
    return "routed"


def account(
    result: BatchResult,
    per_event: list[RoutedEvent],
    stored: Inserted,
    rows: list[NewNotification],
    dead: list[DeadLetter],
    cancelled: int,
) -> None:
    """Count the batch's outcomes: each labelled counter once per label set per batch."""
    inserted, skipped = stored.inserted_keys, stored.skipped
    fresh = set(inserted)  # a key counts for the first event that produced it in the batch
    verbose = log.isEnabledFor(logging.INFO)
    events: Counter[tuple[str, str]] = Counter()
    for event in per_event:
        counted = outcome(event, fresh)
        events[event.type, counted] += 1
        if verbose:
            rules = sorted({n.rule for n in event.notifications})
            log.info(
                "event " + counted.replace("_", " "),
                extra=logs.fields(
                    event_id=event.id,
                    type=event.type,
                    outcome=counted,
                    rules=rules,
                    notifications=len(event.keys),
                ),
            )
    # The store may have skipped a row routing let through (throttle, suppression).
    rows_by: Counter[tuple[str, str]] = Counter(
        (row.channel.value, row.status.value if row.idempotency_key not in skipped else "skipped")
        for row in rows
        if row.idempotency_key in inserted
    )
    skips_by: Counter[tuple[str, str]] = Counter(
        (row.channel.value, skipped[row.idempotency_key])
        for row in rows
        if row.idempotency_key in skipped
    )
    for (channel, reason), count in skips_by.items():
        notify_skips.SKIPPED.labels(channel, reason).inc(count)
    for (event_type, counted), count in events.items():
        result.outcomes[counted] += count
        metrics.EVENTS.labels(type=event_type, outcome=counted).inc(count)
    for (channel, status), count in rows_by.items():
        metrics.NOTIFICATIONS_INSERTED.labels(channel, status).inc(count)
    for letter in dead:
        result.dead += 1
        metrics.DEAD_LETTERS.labels(reason=letter.reason).inc()
        metrics.EVENTS.labels(type="", outcome="invalid").inc()
        log.warning(
            "entry dead-lettered",
            extra=logs.fields(entry_id=letter.entry_id, reason=letter.reason, detail=letter.detail),
        )
    if cancelled:
        metrics.CANCELLED.inc(cancelled)
