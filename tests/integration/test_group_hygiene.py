"""Group hygiene (CONTRACT section 10) with real consumers on a real Redis: stale consumers
are removed by a live one; one holding pending entries never is."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from consumer import hygiene
from tests.conftest import REDIS_URL
from tests.integration import processes
from tests.integration.helpers import RULES, publish_events, shipment

pytestmark = pytest.mark.integration

GROUP = "notifications"


def names(client: redis.Redis, stream: str) -> dict[str, int]:
    """The group's consumers and their pending counts."""
    reply: Any = client.xinfo_consumers(stream, GROUP)
    return {c["name"].decode(): int(c["pending"]) for c in reply}


def test_one_consumer_left_after_restarts(
    pipeline_env: dict[str, str],
    rules_file: Callable[[str], Path],
    procs: processes.Start,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    """Five starts with generated names, each stopped before the next: the last one running
    removes the four others once they are idle past NOTIFY_CONSUMER_REAP_SECONDS."""
    rules_file(RULES)
    env = {**pipeline_env, "NOTIFY_CONSUMER_REAP_SECONDS": "1"}
    stream, restarts = env["NOTIFY_STREAM"], 5
    seen: set[str] = set()
    proc = None
    for k in range(restarts):
        if proc is not None:
            proc.stop()
        proc = procs(processes.consumer(env, tmp_path, f"consumer-{k}"))
        processes.wait_until(
            lambda: redis_client.exists(stream) and set(names(redis_client, stream)) - seen,
            timeout=30,
            message=f"start {k} joins the group",
        )
        [new] = set(names(redis_client, stream)) - seen
        seen.add(new)
    assert len(seen) == restarts
    processes.wait_until(
        lambda: set(names(redis_client, stream)) == {new},
        timeout=30,
        message="only the running consumer left",
    )


def test_a_consumer_holding_entries_is_never_removed(
    pipeline_env: dict[str, str],
    rules_file: Callable[[str], Path],
    procs: processes.Start,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    rules_file(RULES)
    env = {
        **pipeline_env,
        "NOTIFY_CONSUMER_REAP_SECONDS": "1",
        "NOTIFY_CLAIM_IDLE_SECONDS": "3600",  # its entries stay its own for this test
    }
    stream = env["NOTIFY_STREAM"]
    redis_client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    publish_events(redis_client, stream, "held", [shipment(n) for n in range(3)])
    redis_client.xreadgroup(GROUP, "holder", {stream: ">"}, count=3)  # and then it died
    redis_client.xgroup_createconsumer(stream, GROUP, "ghost")
    procs(processes.consumer(env, tmp_path)).wait_for_log("consumer started")
    processes.wait_until(
        lambda: "ghost" not in names(redis_client, stream),
        timeout=30,
        message="the idle consumer with nothing pending removed",
    )
    left = names(redis_client, stream)
    assert left["holder"] == 3 and len(left) == 2  # the holder and the live consumer


@pytest.mark.asyncio
async def test_a_consumer_that_read_since_the_decision_is_kept(
    pipeline_env: dict[str, str], redis_client: redis.Redis
) -> None:
    """The removal re-checks atomically: a consumer that took entries after the reading the
    decision was made on (a stable name restarted) keeps them."""
    stream = pipeline_env["NOTIFY_STREAM"]
    redis_client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    redis_client.xgroup_createconsumer(stream, GROUP, "back")
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await asyncio.sleep(0.05)  # idle 50 ms or more
        decided = hygiene.reapable(
            await hygiene.members(client, stream, GROUP), own="me", idle_ms=10
        )
        assert decided == ["back"]
        publish_events(redis_client, stream, "late", [shipment(1)])
        redis_client.xreadgroup(GROUP, "back", {stream: ">"}, count=1)
        assert not await hygiene.remove_if_idle(client, stream, GROUP, "back", 10)
        assert names(redis_client, stream) == {"back": 1}
    finally:
        await client.aclose()
