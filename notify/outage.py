"""Retry I/O through an outage with backoff, logging once when it starts and once at the end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import redis.exceptions
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from notify import logs

T = TypeVar("T")
log = logs.get("outage")

# Connection-level failures only: a bug or a constraint violation must not loop forever.
TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    # pg_terminate_backend, a restart or a failover: the server ended our session.
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    # asyncpg's state after the server killed an idle pooled connection; a retry gets a new one.
    asyncpg.InternalClientError,
)


class OutageLog:
    """Log an outage once when it starts and once when it ends, never per retry."""

    def __init__(self, name: str, consequence: str = "retrying with backoff") -> None:
        self.name = name
        self.consequence = consequence
        self.since: float | None = None

    def started(self, error: BaseException | None) -> None:
        if self.since is None:
            self.since = time.monotonic()
            log.warning(
                "%s unavailable; %s",
                self.name,
                self.consequence,
                extra=logs.fields(error=f"{type(error).__name__}: {error}"),
            )

    def ended(self) -> None:
        if self.since is not None:
            log.warning(
                "%s is back",
                self.name,
                extra=logs.fields(outage_seconds=round(time.monotonic() - self.since, 2)),
            )
            self.since = None


class OutageGuard:
    """Wraps calls to one service in tenacity; `wait` can be shrunk to zero-ish for tests.

    One guard may serve several concurrent callers (the consumer's reader and writer share
    Redis). An outage is one warning pair however many of them notice it:

    - it ends only when no caller is still failing, so one caller's recovery does not
      declare it over while another is still retrying (and about to start a second one);
    - `on_failure` runs after each connection-level failure, to drop the other pooled
      connections to the same server: they are most likely dead too (a restart, a failover,
      severed clients), and each would otherwise fail on its next use, after the outage
      was over, and log a pair of its own.
    """

    def __init__(
        self,
        name: str,
        *,
        initial: float = 0.1,
        maximum: float = 5.0,
        on_failure: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.name = name
        self.initial = initial
        self.maximum = maximum
        self.outage = OutageLog(name)
        self.on_failure = on_failure
        self._failing = 0  # calls between their first failure and their end

    def _before_sleep(self, state: object) -> None:
        outcome = getattr(state, "outcome", None)
        self.outage.started(outcome.exception() if outcome is not None else None)

    async def _failed(self) -> None:
        if self.on_failure is None:
            return
        try:
            await self.on_failure()
        except Exception as exc:  # noqa: BLE001 - a best-effort clean-up must not mask the failure
            log.debug("dropping pooled connections failed", extra=logs.fields(error=repr(exc)))

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        failed = False
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(TRANSIENT),
                wait=wait_exponential_jitter(
                    multiplier=self.initial, max=self.maximum, jitter=self.initial
                ),
                before_sleep=self._before_sleep,
                reraise=True,
            ):
                with attempt:
                    try:
                        result = await fn()
                    except TRANSIENT:
                        if not failed:
                            failed = True
                            self._failing += 1
                        await self._failed()
                        raise
        finally:
            if failed:
                self._failing -= 1
        if self._failing == 0:
            self.outage.ended()
        return result
