"""The stream or its group vanishing under a running consumer (an operator's DEL, FLUSHDB, a
Redis restart without persistence, XGROUP DESTROY): the consumer says so once per loss,
counts it, recreates the group and goes on with what is published afterwards."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from harness.launcher import free_port
from sandbox import Sandbox
from tests.integration import processes
from tests.integration.helpers import RULES, publish, rows, shipment
from tests.integration.test_operations import scrape, value

pytestmark = pytest.mark.integration

LOST = "stream or consumer group lost"


def test_the_consumer_survives_its_stream_and_group_vanishing(
    pipeline_env: dict[str, str],
    rules_file: Callable[[str], Path],
    procs: processes.Start,
    tmp_path: Path,
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    rules_file(RULES)
    name, port = f"loss-{uuid.uuid4().hex[:8]}", free_port()
    env = {
        **pipeline_env,
        # A name to find this consumer's connection by in CLIENT LIST (Redis is shared).
        "REDIS_URL": f"{pipeline_env['REDIS_URL']}?client_name={name}",
        "NOTIFY_METRICS_PORT": str(port),
        "NOTIFY_BLOCK_MS": "500",
    }
    stream, group = env["NOTIFY_STREAM"], env["NOTIFY_GROUP"]
    procs(processes.worker(env, tmp_path)).wait_for_log("ready")
    consumer = procs(processes.consumer(env, tmp_path))
    consumer.wait_for_log("consumer started")

    def resets() -> float:
        return value(scrape(port), "notify_stream_resets_total", stream=stream, group=group)

    def blocked() -> bool:
        mine = [c for c in redis_client.client_list() if c["name"] == name]
        return any(c["cmd"] == "xreadgroup" and "b" in c["flags"] for c in mine)

    sent = 0

    def send_one(tag: str) -> None:
        nonlocal sent
        publish(
            redis_client, stream, f"{tag}-{stream}", "shipment.delayed", shipment(sent, tokens=0)
        )
        sent += 1
        sandbox.wait_for(sent, timeout=30)

    processes.wait_until(lambda: resets() == 0, message="the reset counter exported at 0")
    send_one("before")

    # 1. DEL while the consumer is blocked in XREADGROUP: Redis unblocks it with an error.
    processes.wait_until(blocked, message="the consumer blocked in XREADGROUP")
    redis_client.delete(stream)
    processes.wait_until(lambda: resets() == 1, message="the first loss counted")
    send_one("after-del-blocked")

    # 2. DEL while it is not blocked: frozen, its last read timed out; it meets NOGROUP next.
    os.kill(consumer.pid, signal.SIGSTOP)
    try:
        processes.wait_until(lambda: not blocked(), message="the frozen consumer's block to end")
        redis_client.delete(stream)
        publish(
            redis_client, stream, f"during-{stream}", "shipment.delayed", shipment(sent, tokens=0)
        )
        sent += 1
    finally:
        os.kill(consumer.pid, signal.SIGCONT)
    sandbox.wait_for(sent, timeout=30)  # published before the group was back, still sent
    assert resets() == 2

    # 3. XGROUP DESTROY while blocked: NOGROUP; the stream survives, so nothing is re-read.
    processes.wait_until(blocked, message="the consumer blocked again")
    redis_client.xgroup_destroy(stream, group)
    processes.wait_until(lambda: resets() == 3, message="the third loss counted")
    send_one("after-destroy")

    assert consumer.log().count(LOST) == 3  # once per loss, not once per failed read
    assert consumer.proc is not None and consumer.proc.poll() is None
    assert sorted(m.to for m in sandbox.messages("sms")) == [f"+1415555{n:04d}" for n in range(4)]
    assert len(rows(database_url, "event_id LIKE $1", f"%-{stream}")) == 4
    processes.wait_until(
        lambda: redis_client.xinfo_groups(stream)[0]["pending"] == 0, message="all acked"
    )
