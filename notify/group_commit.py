"""Group commit: items from many concurrent callers, written in one statement per round trip.

Workers use it for finished attempts (tasks/db.py), `notify webhooks` for receipts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, Protocol, TypeVar

from notify.outage import TRANSIENT

T = TypeVar("T")


class Waiter(Protocol):
    """What a caller waits on: an asyncio.Future or a concurrent.futures.Future."""

    def cancelled(self) -> bool: ...

    def set_result(self, result: None, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


class GroupCommit(Generic[T]):
    """Nothing waits to fill a batch: whatever queued while the previous write ran goes next,
    so a lone item is written at once and a busy process writes dozens per statement. Each
    caller is answered only after its own item is committed. Lives on one event loop.

    A batch that fails for a reason other than a lost connection is written again one item
    at a time, so one bad item fails only its own caller.
    """

    def __init__(self, write: Callable[[Sequence[T]], Awaitable[Any]], max_rows: int = 500):
        self.write = write
        self.max_rows = max_rows
        self._queue: list[tuple[T, Waiter]] = []
        self._writer: asyncio.Task[None] | None = None

    def add(self, item: T, done: Waiter) -> None:
        """Queue an item; call on the loop's thread."""
        self._queue.append((item, done))
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    async def idle(self) -> None:
        """Return once everything queued so far is written (for a graceful shutdown)."""
        while self._writer is not None:
            await asyncio.shield(self._writer)

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self.max_rows]
                del self._queue[: self.max_rows]
                await self._write(batch)
        finally:
            self._writer = None

    async def _write(self, batch: list[tuple[T, Waiter]]) -> None:
        try:
            await self.write([item for item, _ in batch])
        except TRANSIENT as exc:
            _answer(batch, exc)  # every caller decides whether to retry
        except Exception as exc:  # noqa: BLE001 - isolate the item that broke the statement
            if len(batch) == 1:
                _answer(batch, exc)
                return
            for one in batch:
                await self._write([one])
        else:
            _answer(batch, None)


def _answer(batch: list[tuple[Any, Waiter]], exc: BaseException | None) -> None:
    for _, done in batch:
        if done.cancelled():
            continue
        if exc is None:
            done.set_result(None)
        else:
            done.set_exception(exc)
