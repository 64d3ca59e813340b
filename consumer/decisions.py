""" "Why not?": a compact record of the decisions the notifications cannot tell.

An event whose every matched rule made a row needs no record: its rows (sent, failed with
`invalid_recipient`, skipped as `throttled` or `suppressed`) say what happened. The rest
get one `event_decisions` row: the rules that listened for its type (none, for an event
nobody listens for) and the ones that made a row; the others had a false condition.

Kept off the consumer's hot path: `decide` is a length check for the usual event, and
the rows go to Postgres in the background with COPY, a batch a second. They are a
diagnostic, so a batch that cannot be written is dropped and counted, never retried
into the consumer's way, and the buffer is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime

import asyncpg
from prometheus_client import Counter

from notify import logs
from rules.ruleset import CompiledRule
from schemas import Event, NewNotification

log = logs.get("consumer")

DROPPED = Counter(
    "notify_decisions_dropped_total",
    "Why-not decision records not written (buffer full, or Postgres refused the batch)",
)
COLUMNS = (
    "event_id", "event_type", "event_subject", "event_time", "rules_version", "matched",
    "notified",
)  # fmt: skip
Record = tuple[str, str, str | None, datetime, str, list[str], list[str]]
# About a minute of a busy stream whose events mostly match nothing.
MAX_BUFFERED = 100_000


def decide(
    event: Event,
    matched: tuple[CompiledRule, ...],
    notifications: Sequence[NewNotification],
    version: str,
) -> Record | None:
    """The record to keep for this event, or None when its rows tell it all."""
    if notifications and len(matched) == 1:
        return None  # the usual event: one rule listened and it made rows
    notified = sorted({n.rule for n in notifications})
    if notifications and len(notified) == len(matched):
        return None
    names = [r.name for r in matched]
    return (event.id, event.type, event.subject, event.time, version, names, notified)


class DecisionLog:
    """A bounded buffer of records and the background task that writes them."""

    def __init__(self, pool: asyncpg.Pool, interval: float = 1.0) -> None:
        self.pool = pool
        self.interval = interval
        self._buffer: list[Record] = []

    def add(self, records: list[Record]) -> None:
        room = MAX_BUFFERED - len(self._buffer)
        if len(records) > room:
            DROPPED.inc(len(records) - room)
            records = records[:room]
        self._buffer.extend(records)

    async def flush(self) -> int:
        records, self._buffer = self._buffer, []
        if not records:
            return 0
        try:
            await self.pool.copy_records_to_table(
                "event_decisions", records=records, columns=COLUMNS
            )
        except (OSError, asyncpg.PostgresError) as exc:
            DROPPED.inc(len(records))
            log.warning(
                "why-not records dropped",
                extra=logs.fields(records=len(records), error=f"{type(exc).__name__}: {exc}"),
            )
            return 0
        return len(records)

    async def run(self, stopping: asyncio.Event) -> None:
        """Write a batch every `interval` until `stopping`, then the last one."""
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=self.interval)
            await self.flush()
