"""One outage, one warning pair: however many callers of a guard notice it."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable

import pytest

from notify.outage import OutageGuard


def messages(stream: io.StringIO) -> list[str]:
    return [json.loads(line)["msg"] for line in stream.getvalue().splitlines()]


pytestmark = pytest.mark.asyncio


def failing(times: int, delay: float = 0.0) -> tuple[list[int], Callable[[], Awaitable[str]]]:
    """A call that fails `times` times with a connection error, then answers."""
    calls: list[int] = []

    async def call() -> str:
        calls.append(1)
        await asyncio.sleep(delay)
        if len(calls) <= times:
            raise ConnectionResetError("severed")
        return "ok"

    return calls, call


async def test_one_caller_recovering_does_not_end_an_outage_another_is_still_in(
    captured: io.StringIO,
) -> None:
    # The consumer's reader and writer share the Redis guard: the reader's connection fails
    # once and comes back, the writer's keeps failing a little longer.
    guard = OutageGuard("redis", initial=0.01, maximum=0.02)
    _, reader = failing(1)
    writes, writer = failing(4, delay=0.01)
    assert await asyncio.gather(guard.call(reader), guard.call(writer)) == ["ok", "ok"]
    assert len(writes) == 5
    assert messages(captured) == ["redis unavailable; retrying with backoff", "redis is back"]


async def test_a_failure_drops_the_other_pooled_connections_once_per_failed_try() -> None:
    dropped: list[int] = []

    async def drop() -> None:
        dropped.append(1)

    guard = OutageGuard("postgres", initial=0.01, maximum=0.02, on_failure=drop)
    _, call = failing(2)
    assert await guard.call(call) == "ok"
    assert len(dropped) == 2
    _, fine = failing(0)
    await guard.call(fine)
    assert len(dropped) == 2  # nothing to drop when nothing failed


async def test_a_clean_up_that_fails_does_not_hide_the_outage(captured: io.StringIO) -> None:
    async def broken() -> None:
        raise RuntimeError("pool already closed")

    guard = OutageGuard("postgres", initial=0.01, maximum=0.02, on_failure=broken)
    _, call = failing(1)
    assert await guard.call(call) == "ok"
    assert messages(captured) == ["postgres unavailable; retrying with backoff", "postgres is back"]
