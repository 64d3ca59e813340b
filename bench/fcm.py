"""CPU per push for each way firebase-admin can send many messages (why batches use send)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from firebase_admin import messaging

from bench.env import BenchEnv
from notify.settings import Settings
from sandbox.google.identifiers import registration_token
from tasks.providers.fcm_push import FcmPush

CHUNK = 50  # one send_batch task's rows


def _tokens(count: int) -> list[str]:
    """Registration tokens as apps store them (FCM rejects other shapes), made untimed."""
    return [registration_token(f"bench-{n}") for n in range(count)]


def _threads(push: FcmPush, tokens: list[str]) -> None:
    """What workers do: `send` per message on a shared pool of sender threads."""
    with ThreadPoolExecutor(64) as pool:
        list(pool.map(lambda n: push.send(tokens[n], "Bench", "body", {"n": str(n)}),
                      range(len(tokens))))  # fmt: skip


def _chunks(push: FcmPush, tokens: list[str]) -> list[list[messaging.Message]]:
    messages = [push.message(t, "Bench", "body", {"n": str(n)}) for n, t in enumerate(tokens)]
    return [messages[i : i + CHUNK] for i in range(0, len(messages), CHUNK)]


def _check(response: messaging.BatchResponse) -> None:
    if response.failure_count:
        raise RuntimeError(f"{response.failure_count} pushes failed in the fcm bench")


def _send_each(push: FcmPush, tokens: list[str]) -> None:
    """`send_each` per chunk (it starts a thread per message); two chunks at a time."""
    with ThreadPoolExecutor(2) as pool:
        for response in pool.map(lambda c: messaging.send_each(c, app=push.app()),
                                 _chunks(push, tokens)):  # fmt: skip
            _check(response)


def _send_each_async(push: FcmPush, tokens: list[str], loop: asyncio.AbstractEventLoop) -> None:
    """`send_each_async` (httpx) per chunk on one event loop; two chunks at a time."""

    async def run() -> None:
        gate = asyncio.Semaphore(2)

        async def one(chunk: list[messaging.Message]) -> None:
            async with gate:
                _check(await messaging.send_each_async(chunk, app=push.app()))

        await asyncio.gather(*(one(c) for c in _chunks(push, tokens)))

    loop.run_until_complete(run())


def _modes(
    loop: asyncio.AbstractEventLoop,
) -> dict[str, Callable[[FcmPush, list[str]], None]]:
    return {
        "send per message, 64 threads": _threads,
        "send_each, 50 per call": _send_each,
        "send_each_async, 50 per call": lambda push, t: _send_each_async(push, t, loop),
    }


def fcm_calls(env: BenchEnv, count: int, latency_ms: int) -> dict[str, Any]:
    """Each mode's pushes/s and client CPU per push (this process only, not the emulator)."""
    sandbox = env.sandbox()
    sandbox.reset()
    sandbox.set_latency(latency_ms)
    push = FcmPush(Settings.from_env(env.env()))
    results: dict[str, Any] = {"pushes": count, "latency_ms": latency_ms}
    # Open until after close(): firebase-admin closes its httpx client with asyncio.run,
    # which needs the connections' own loop still open.
    loop = asyncio.new_event_loop()
    try:
        push.send(registration_token("warm"), "Bench", "warm-up", None)  # imports, OAuth
        tokens = _tokens(count)
        for name, run in _modes(loop).items():
            cpu, wall = time.process_time(), time.perf_counter()
            run(push, tokens)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            results[name] = {"per_s": count / wall, "cpu_ms_per_push": cpu / count * 1000}
    finally:
        push.close()
        loop.close()
        sandbox.set_latency(0)
    return results
