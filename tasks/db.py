"""Worker-side access to the outcome store: one asyncio loop thread per process.

Celery tasks are synchronous and may run on many threads; asyncpg wants one loop. A daemon
thread runs that loop and the pool, and tasks submit coroutines to it. Built lazily and
rebuilt after fork, so prefork children never share the parent's sockets.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from datetime import datetime
from typing import Protocol, TypeVar

from notify import provider_health
from notify.costs import Price, Priced, Unpriced
from notify.database import STATEMENT_CACHE_SIZE
from notify.group_commit import GroupCommit
from notify.partitions import Upkeep
from notify.provider_health import Evidence
from notify.receipts import AwaitingReceipt
from notify.store import Finished, OutcomeStore
from schemas import Channel, Notification, Receipt, Resolution, Settled, Status

T = TypeVar("T")


class WorkerStore(Protocol):
    """What tasks need from the outcome store, synchronously. `StoreRunner` is the real one;
    `tasks.testing.FakeWorkerStore` is the in-memory one tests use."""

    def ping(self) -> None: ...

    def claim(self, notification_id: int, pick: str | None = None) -> Notification | None: ...

    def claim_many(
        self, ids: Sequence[int], picks: Sequence[str | None] | None = None
    ) -> list[Notification]: ...

    def record(self, item: Finished) -> None: ...

    def release(self, held: Sequence[tuple[int, int, datetime | None]]) -> int: ...

    def due_slots(self, *, within: float, limit: int) -> list[tuple[int, Channel, datetime]]: ...

    def hold_back(self, held: Sequence[tuple[int, int]], code: str, message: str) -> int: ...

    def unpriced(
        self, *, limit: int, interval_seconds: float, max_lookups: int
    ) -> list[Unpriced]: ...

    def record_prices(self, prices: Sequence[Price]) -> list[Priced]: ...

    def taken(self, provider_message_ids: Sequence[str], *, besides: int) -> set[str]: ...

    def dispatch_due(
        self, *, now: datetime, stale_seconds: float, limit: int
    ) -> list[tuple[int, Channel, Status]]: ...

    def stuck_pending(self, *, older_than: float, limit: int) -> list[tuple[int, Channel]]: ...

    def stuck_sending(self, *, older_than: float, limit: int) -> list[Notification]: ...

    def resolve_sending(self, row: Notification, resolution: Resolution) -> bool: ...

    def delete_older_than(self, *, days: float, limit: int) -> int: ...

    def keep_partitions(self, *, retention_days: float) -> Upkeep: ...

    def forget_expired_throttles(self, *, limit: int) -> int: ...

    def forget_cancellations(self, *, limit: int) -> int: ...

    def delete_heard_older_than(self, *, days: float, limit: int) -> int: ...

    def awaiting_receipt(
        self, *, older_than: float, limit: int, max_lookups: int
    ) -> list[AwaitingReceipt]: ...

    def record_lookups(
        self, receipts: Sequence[Receipt], looked_up: Sequence[int]
    ) -> list[Settled]: ...

    def provider_evidence(
        self, providers: Sequence[str], slow_seconds: float
    ) -> dict[str, Evidence]: ...

    def mark_calling(self, notification_id: int, attempt: int) -> None: ...

    def called(self, notification_id: int, attempt: int) -> bool: ...

    def close(self) -> None: ...


class StoreRunner:
    """`WorkerStore` over asyncpg: callers on any thread, one loop thread and pool per process."""

    def __init__(
        self, dsn: str, max_size: int = 16, statement_cache_size: int = STATEMENT_CACHE_SIZE
    ) -> None:
        self.dsn = dsn
        self.max_size = max_size
        self.statement_cache_size = statement_cache_size
        self._lock = threading.Lock()
        self._pid = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._store: OutcomeStore | None = None
        self._commits: GroupCommit[Finished] | None = None
        self._thread: threading.Thread | None = None

    def _ensure(
        self,
    ) -> tuple[asyncio.AbstractEventLoop, OutcomeStore, GroupCommit[Finished]]:
        with self._lock:
            if (
                self._pid != os.getpid()
                or self._loop is None
                or self._store is None
                or self._commits is None
            ):
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="notify-db", daemon=True)
                thread.start()
                future = asyncio.run_coroutine_threadsafe(
                    OutcomeStore.connect(
                        self.dsn,
                        min_size=min(8, self.max_size),
                        max_size=self.max_size,
                        statement_cache_size=self.statement_cache_size,
                    ),
                    loop,
                )
                try:
                    store = future.result(timeout=30)
                except BaseException:
                    loop.call_soon_threadsafe(loop.stop)
                    raise
                self._loop, self._store, self._pid = loop, store, os.getpid()
                self._thread = thread
                # Finished attempts from all sender threads, one statement per round trip.
                self._commits = GroupCommit(lambda batch: store.finish_many(batch))  # noqa: PLW0108 - looked up per write, so tests can swap it
            return self._loop, self._store, self._commits

    def run(self, call: Callable[[OutcomeStore], Awaitable[T]], timeout: float = 60) -> T:
        loop, store, _ = self._ensure()

        async def wrapped() -> T:
            return await call(store)

        return asyncio.run_coroutine_threadsafe(wrapped(), loop).result(timeout)

    async def _ping(self, store: OutcomeStore) -> None:
        await store.pool.fetchval("SELECT 1")

    def ping(self) -> None:
        self.run(self._ping)

    def claim(self, notification_id: int, pick: str | None = None) -> Notification | None:
        return self.run(lambda store: store.claim(notification_id, pick))

    def claim_many(
        self, ids: Sequence[int], picks: Sequence[str | None] | None = None
    ) -> list[Notification]:
        return self.run(lambda store: store.claim_many(ids, picks))

    def release(self, held: Sequence[tuple[int, int, datetime | None]]) -> int:
        return self.run(lambda store: store.release(held))

    def due_slots(self, *, within: float, limit: int) -> list[tuple[int, Channel, datetime]]:
        return self.run(lambda store: store.due_slots(within=within, limit=limit))

    def hold_back(self, held: Sequence[tuple[int, int]], code: str, message: str) -> int:
        return self.run(lambda store: store.hold_back(held, code, message))

    def unpriced(self, *, limit: int, interval_seconds: float, max_lookups: int) -> list[Unpriced]:
        return self.run(
            lambda store: store.unpriced(
                limit=limit, interval_seconds=interval_seconds, max_lookups=max_lookups
            )
        )

    def record_prices(self, prices: Sequence[Price]) -> list[Priced]:
        return self.run(lambda store: store.record_prices(prices))

    def dispatch_due(
        self, *, now: datetime, stale_seconds: float, limit: int
    ) -> list[tuple[int, Channel, Status]]:
        return self.run(
            lambda store: store.dispatch_due(now=now, stale_seconds=stale_seconds, limit=limit)
        )

    def stuck_pending(self, *, older_than: float, limit: int) -> list[tuple[int, Channel]]:
        return self.run(lambda store: store.stuck_pending(older_than=older_than, limit=limit))

    def stuck_sending(self, *, older_than: float, limit: int) -> list[Notification]:
        return self.run(lambda store: store.stuck_sending(older_than=older_than, limit=limit))

    def resolve_sending(self, row: Notification, resolution: Resolution) -> bool:
        return self.run(lambda store: store.resolve_sending(row, resolution))

    def taken(self, provider_message_ids: Sequence[str], *, besides: int) -> set[str]:
        return self.run(lambda store: store.taken(provider_message_ids, besides=besides))

    def delete_older_than(self, *, days: float, limit: int) -> int:
        return self.run(lambda store: store.delete_older_than(days=days, limit=limit))

    def keep_partitions(self, *, retention_days: float) -> Upkeep:
        return self.run(lambda store: store.keep_partitions(retention_days=retention_days))

    def forget_expired_throttles(self, *, limit: int) -> int:
        return self.run(lambda store: store.forget_expired_throttles(limit=limit))

    def forget_cancellations(self, *, limit: int) -> int:
        return self.run(lambda store: store.forget_cancellations(limit=limit))

    def delete_heard_older_than(self, *, days: float, limit: int) -> int:
        return self.run(lambda store: store.delete_heard_older_than(days=days, limit=limit))

    def awaiting_receipt(
        self, *, older_than: float, limit: int, max_lookups: int
    ) -> list[AwaitingReceipt]:
        return self.run(
            lambda store: store.receipts.awaiting(
                older_than=older_than, limit=limit, max_lookups=max_lookups
            )
        )

    def record_lookups(
        self, receipts: Sequence[Receipt], looked_up: Sequence[int]
    ) -> list[Settled]:
        return self.run(lambda store: store.receipts.record_lookups(receipts, looked_up))

    def provider_evidence(
        self, providers: Sequence[str], slow_seconds: float
    ) -> dict[str, Evidence]:
        return self.run(lambda store: provider_health.evidence(store.pool, providers, slow_seconds))

    def mark_calling(self, notification_id: int, attempt: int) -> None:
        self.run(lambda store: store.mark_calling(notification_id, attempt))

    def called(self, notification_id: int, attempt: int) -> bool:
        return self.run(lambda store: store.called(notification_id, attempt))

    def record(self, item: Finished, timeout: float = 60) -> None:
        """Record a finished attempt; returns once it is committed (group commit)."""
        loop, _, commits = self._ensure()
        done: Future[None] = Future()
        loop.call_soon_threadsafe(commits.add, item, done)
        done.result(timeout)

    def close(self) -> None:
        with self._lock:
            if self._loop is not None and self._store is not None and self._pid == os.getpid():
                asyncio.run_coroutine_threadsafe(self._store.close(), self._loop).result(10)
                self._loop.call_soon_threadsafe(self._loop.stop)
                if self._thread is not None:
                    self._thread.join(10)
                if not self._loop.is_running():
                    self._loop.close()
            self._loop = self._store = self._commits = self._thread = None
