"""Redis Stream I/O for the consumer group: read, claim, acknowledge, dead-letter.

Measuring the group (lag, pending) is notify/stream_info.py: the workers need it too.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

Fields = dict[bytes, bytes]


@dataclass(frozen=True)
class Entry:
    id: str
    fields: Fields | None  # None: deleted or trimmed while it was pending
    deliveries: int = 1


@dataclass(frozen=True)
class DeadLetter:
    entry_id: str
    fields: Mapping[bytes, bytes]
    reason: str
    detail: str
    deliveries: int = 1


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


class EventStream:
    """One consumer's view of the stream and its group."""

    def __init__(
        self, client: aioredis.Redis, stream: str, group: str, consumer: str, dlq: str
    ) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.dlq = dlq
        self._autoclaim_cursor = "0-0"

    async def ensure_group(self) -> None:
        try:
            await self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    @property
    def autoclaim_cursor(self) -> str:
        return self._autoclaim_cursor

    async def read(self, count: int, block_ms: int | None, *, own_pending: bool) -> list[Entry]:
        """New entries (`>`), or this consumer's own pending ones from the start."""
        if own_pending:
            return await self.read_pending_after("0", count)
        return await self._xreadgroup(">", count, block_ms)

    async def read_pending_after(self, cursor: str, count: int) -> list[Entry]:
        """This consumer's pending entries after `cursor`: what it held when it last stopped."""
        entries = await self._xreadgroup(cursor, count, None)
        return await self._with_deliveries(entries) if entries else []

    async def _xreadgroup(self, start: str, count: int, block_ms: int | None) -> list[Entry]:
        reply: Any = await self.client.xreadgroup(
            self.group, self.consumer, {self.stream: start}, count=count, block=block_ms
        )
        return [
            Entry(_text(eid), dict(fields) if fields else None)
            for _, messages in reply or []
            for eid, fields in messages
        ]

    async def claim_idle(self, min_idle_seconds: float, count: int) -> tuple[list[Entry], int]:
        """XAUTOCLAIM entries idle on any consumer; also acks ids that were deleted meanwhile."""
        reply: Any = await self.client.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=int(min_idle_seconds * 1000),
            start_id=self._autoclaim_cursor,
            count=count,
        )
        cursor, claimed = reply[0], reply[1]
        deleted = reply[2] if len(reply) > 2 else []
        self._autoclaim_cursor = _text(cursor)
        if deleted:
            # Trimmed while pending: nothing left to process, so just release the ids.
            await self.client.xack(self.stream, self.group, *deleted)
        entries = [Entry(_text(eid), dict(f) if f else None) for eid, f in claimed]
        return (await self._with_deliveries(entries) if entries else []), len(deleted)

    async def _with_deliveries(self, entries: list[Entry]) -> list[Entry]:
        counts: dict[str, int] = {}
        ids = sorted((e.id for e in entries), key=lambda i: tuple(int(x) for x in i.split("-")))
        first, last = ids[0], ids[-1]
        rows = await self.client.xpending_range(
            self.stream, self.group, min=first, max=last, count=len(entries) * 2 + 10
        )
        for row in rows:
            counts[_text(row["message_id"])] = int(row["times_delivered"])
        return [Entry(e.id, e.fields, counts.get(e.id, 1)) for e in entries]

    async def finish(self, ack_ids: Sequence[str], dead: Sequence[DeadLetter]) -> None:
        """Dead-letter and acknowledge in one MULTI, so a dead letter is never lost or doubled."""
        if not ack_ids and not dead:
            return
        async with self.client.pipeline(transaction=True) as pipe:
            for letter in dead:
                record: dict[Any, Any] = {
                    **letter.fields,
                    "_dlq_reason": letter.reason,
                    "_dlq_detail": letter.detail[:1000],
                    "_dlq_entry_id": letter.entry_id,
                    "_dlq_deliveries": letter.deliveries,
                    "_dlq_time": f"{time.time():.3f}",
                }
                pipe.xadd(self.dlq, record)
            ids = list(ack_ids) + [d.entry_id for d in dead]
            if ids:
                pipe.xack(self.stream, self.group, *ids)
            await pipe.execute()
