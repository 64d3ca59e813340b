"""Worker-side access to the outcome store: one asyncio loop thread per process.

Celery tasks are synchronous and may run on many threads; asyncpg wants one loop. A daemon
thread runs that loop and the pool, and tasks submit coroutines to it. Built lazily and
rebuilt after fork, so prefork children never share the parent's sockets.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import TypeVar

from consumer.store import Finished, OutcomeStore

T = TypeVar("T")


class GroupCommit:
    """Finished attempts from many sender threads, written in one statement per round trip.

    Nothing waits to fill a batch: whatever queued while the previous write ran goes next, so
    a lone row is written at once and a busy process writes dozens per statement. Each caller
    still returns only after its own row is committed, so no outcome is left unrecorded for
    longer than with one statement per row. Lives on the runner's loop thread.
    """

    def __init__(self, store: OutcomeStore, max_rows: int = 500) -> None:
        self.store = store
        self.max_rows = max_rows
        self._queue: list[tuple[Finished, Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    def add(self, item: Finished, done: Future[None]) -> None:
        self._queue.append((item, done))
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self.max_rows]
                del self._queue[: self.max_rows]
                try:
                    await self.store.finish_many([item for item, _ in batch])
                except Exception as exc:  # noqa: BLE001 - each caller decides whether to retry
                    for _, done in batch:
                        if not done.cancelled():
                            done.set_exception(exc)
                else:
                    for _, done in batch:
                        if not done.cancelled():
                            done.set_result(None)
        finally:
            self._writer = None


class StoreRunner:
    def __init__(self, dsn: str, max_size: int = 16) -> None:
        self.dsn = dsn
        self.max_size = max_size
        self._lock = threading.Lock()
        self._pid = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._store: OutcomeStore | None = None
        self._commits: GroupCommit | None = None
        self._thread: threading.Thread | None = None

    def _ensure(self) -> tuple[asyncio.AbstractEventLoop, OutcomeStore, GroupCommit]:
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
                        self.dsn, min_size=min(8, self.max_size), max_size=self.max_size
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
                self._commits = GroupCommit(store)
            return self._loop, self._store, self._commits

    def run(self, call: Callable[[OutcomeStore], Awaitable[T]], timeout: float = 60) -> T:
        loop, store, _ = self._ensure()

        async def wrapped() -> T:
            return await call(store)

        return asyncio.run_coroutine_threadsafe(wrapped(), loop).result(timeout)

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
