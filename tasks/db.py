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
from typing import TypeVar

from consumer.store import OutcomeStore

T = TypeVar("T")


class StoreRunner:
    def __init__(self, dsn: str, max_size: int = 16) -> None:
        self.dsn = dsn
        self.max_size = max_size
        self._lock = threading.Lock()
        self._pid = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._store: OutcomeStore | None = None

    def _ensure(self) -> tuple[asyncio.AbstractEventLoop, OutcomeStore]:
        with self._lock:
            if self._pid != os.getpid() or self._loop is None or self._store is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="notify-db", daemon=True).start()
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
            return self._loop, self._store

    def run(self, call: Callable[[OutcomeStore], Awaitable[T]], timeout: float = 60) -> T:
        loop, store = self._ensure()

        async def wrapped() -> T:
            return await call(store)

        return asyncio.run_coroutine_threadsafe(wrapped(), loop).result(timeout)

    def close(self) -> None:
        with self._lock:
            if self._loop is not None and self._store is not None and self._pid == os.getpid():
                asyncio.run_coroutine_threadsafe(self._store.close(), self._loop).result(10)
                self._loop.call_soon_threadsafe(self._loop.stop)
            self._loop = self._store = None
