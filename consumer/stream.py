"""Redis Stream I/O for the consumer group: read, claim, acknowledge, dead-letter.

Measuring the group (lag, pending) is notify/stream_info.py: the workers need it too.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.exceptions import ResponseError

from notify.redis_clients import AsyncRedis
from notify.stream_info import GroupInfo, read_group_info
from schemas import NotifyError

Fields = dict[bytes, bytes]

# What Redis answers once the stream or the group is gone: a read blocked when the key was
# deleted, or one blocked when the group was destroyed, or any group command afterwards.
_LOST = ("NOGROUP", "UNBLOCKED the stream key no longer exists")


class StreamLost(NotifyError):
    """The stream or its consumer group vanished (DEL, FLUSHDB, XGROUP DESTROY, a Redis
    restart without persistence): recreate the group and carry on."""


@contextlib.contextmanager
def _detect_loss() -> Iterator[None]:
    try:
        yield
    except ResponseError as exc:
        if str(exc).startswith(_LOST):
            raise StreamLost(str(exc)) from exc
        raise


def id_key(entry_id: str) -> tuple[int, int]:
    """A stream id as a sortable pair (`1700000000000-3` -> (1700000000000, 3))."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class Entry(msgspec.Struct, frozen=True):
    """One stream entry as read (a Struct: built per event, seven times cheaper than a
    frozen dataclass)."""

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


def dead_letter_record(letter: DeadLetter) -> dict[Any, Any]:
    """The entry's own fields and why it died (`_dlq_*`, which replay strips again)."""
    return {
        **letter.fields,
        "_dlq_reason": letter.reason,
        "_dlq_detail": letter.detail[:1000],
        "_dlq_entry_id": letter.entry_id,
        "_dlq_deliveries": letter.deliveries,
        "_dlq_time": f"{time.time():.3f}",
    }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _fields(value: Any) -> Fields | None:
    """redis-py's reply as our own dict (it already is one: no copy), None when empty."""
    if not value:
        return None
    return value if type(value) is dict else dict(value)


class EventStream:
    """One consumer's view of the stream and its group."""

    def __init__(
        self, client: AsyncRedis, stream: str, group: str, consumer: str, dlq: str
    ) -> None:
        self.client = client
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.dlq = dlq
        self._autoclaim_cursor = "0-0"
        # The newest entry known delivered to the group (by our reads or XINFO), so a
        # group recreated after a loss does not start over (see recreate_group).
        self.last_delivered: str | None = None
        # That entry's event `id` when we read it ourselves: a stream deleted and refilled
        # within the same millisecond can reuse the entry id, never the event.
        self._last_event_id: bytes | None = None

    def _saw(self, entry_id: str, fields: Mapping[bytes, bytes] | None = None) -> None:
        if self.last_delivered is None or id_key(entry_id) > id_key(self.last_delivered):
            self.last_delivered = entry_id
            self._last_event_id = (fields or {}).get(b"id")

    async def ensure_group(self, start: str = "0") -> None:
        try:
            await self.client.xgroup_create(self.stream, self.group, id=start, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # another consumer created it first: fine
                raise

    async def info(self) -> GroupInfo:
        """The group's lag and pending, learning its delivered position on the way (so a
        recreated group knows where the old one stood, even if others did the reading)."""
        info = await read_group_info(self.client, self.stream, self.group)
        if info.last_delivered_id is not None:
            self._saw(info.last_delivered_id)
        return info

    async def recreate_group(self) -> str:
        """After StreamLost: the group again (and the stream, MKSTREAM); returns its start id.

        If the last entry known delivered is still in the stream, the stream survived and
        only the group was destroyed: start after that entry, or every retained event would
        be routed again (sends are idempotent, but an old cancelling event would cancel
        reminders created since). Otherwise the stream is new (deleted, flushed, Redis
        restarted empty) and everything in it arrived after the loss: start at the beginning.
        """
        last = self.last_delivered
        found: Any = (
            await self.client.xrange(self.stream, min=last, max=last, count=1) if last else []
        )
        survived = bool(found) and (
            self._last_event_id is None or found[0][1].get(b"id") == self._last_event_id
        )
        start = last if survived and last is not None else "0"
        await self.ensure_group(start)
        self._autoclaim_cursor = "0-0"  # the pending list went with the old group
        self.last_delivered = None if start == "0" else start
        return start

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
        with _detect_loss():
            reply: Any = await self.client.xreadgroup(
                self.group, self.consumer, {self.stream: start}, count=count, block=block_ms
            )
        entries = [
            Entry(_text(eid), _fields(fields))
            for _, messages in reply or []
            for eid, fields in messages
        ]
        if entries and start == ">":
            self._saw(entries[-1].id, entries[-1].fields)
        return entries

    async def claim_idle(self, min_idle_seconds: float, count: int) -> tuple[list[Entry], int]:
        """XAUTOCLAIM entries idle on any consumer; also acks ids that were deleted meanwhile."""
        with _detect_loss():
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
        entries = [Entry(_text(eid), _fields(f)) for eid, f in claimed]
        return (await self._with_deliveries(entries) if entries else []), len(deleted)

    async def _with_deliveries(self, entries: list[Entry]) -> list[Entry]:
        counts: dict[str, int] = {}
        ids = sorted((e.id for e in entries), key=id_key)
        first, last = ids[0], ids[-1]
        try:
            with _detect_loss():
                rows = await self.client.xpending_range(
                    self.stream, self.group, min=first, max=last, count=len(entries) * 2 + 10
                )
        except StreamLost:
            # Lost between the read and this: the counts went with the group, but these
            # entries are in hand and the recreated group will not deliver them again.
            return entries
        for row in rows:
            counts[_text(row["message_id"])] = int(row["times_delivered"])
        return [Entry(e.id, e.fields, counts.get(e.id, 1)) for e in entries]

    async def finish(self, ack_ids: Sequence[str], dead: Sequence[DeadLetter]) -> None:
        """Dead-letter, then acknowledge: never lost, and no command spans the two streams
        (on a Redis Cluster they live in different slots).

        A crash between the two delivers the entry again and dead-letters it again; both
        copies carry its `_dlq_entry_id`, and notify/dead_letters.py lists and replays
        them as one."""
        if not ack_ids and not dead:
            return
        if dead:
            async with self.client.pipeline(transaction=False) as pipe:
                for letter in dead:
                    pipe.xadd(self.dlq, dead_letter_record(letter))
                await pipe.execute()
        ids = list(ack_ids) + [d.entry_id for d in dead]
        await self.client.xack(self.stream, self.group, *ids)
