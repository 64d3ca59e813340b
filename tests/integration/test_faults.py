"""Fault injection: kill processes and sever connections mid-run; nothing lost, nothing doubled.

Each test asserts the exact multiset of messages the emulator received.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis

from sandbox import Sandbox
from tests.integration import processes
from tests.integration.helpers import RULES, count, publish_events, rows, shipment, wait_for_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]


def sms_only(numbers: range) -> list[dict[str, Any]]:
    """Shipments whose customers have no device: one SMS each, to expected_sms's numbers."""
    return [shipment(n, tokens=0) for n in numbers]


def expected_sms(numbers: range) -> Counter[str]:
    return Counter(f"+1415555{n:04d}" for n in numbers)


def test_consumer_killed_repeatedly_loses_and_doubles_nothing(
    pipeline_env: dict[str, str],
    rules_file: Callable[[str], Path],
    procs: processes.Start,
    tmp_path: Path,
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    rules_file(RULES)
    env = {
        **pipeline_env,
        "NOTIFY_CLAIM_IDLE_SECONDS": "1",
        "NOTIFY_BATCH_SIZE": "10",
        # Each kill can strand one batch for one more delivery; 4 kills stay well under 10.
        "NOTIFY_MAX_DELIVERIES": "10",
    }
    total = 3000
    stream = env["NOTIFY_STREAM"]
    publish_events(redis_client, stream, f"kc-{stream}", sms_only(range(total)))
    procs(processes.worker(env, tmp_path, concurrency=16)).wait_for_log("ready")
    seen = 0
    for round_ in range(4):
        consumer = procs(processes.consumer(env, tmp_path, name=f"consumer-{round_}"))
        target = seen + 300
        processes.wait_until(
            lambda target=target: (
                count(database_url, "event_id LIKE $1", f"kc-{stream}-%") >= target
            ),
            message=f"progress before kill {round_}",
        )
        consumer.stop(signal.SIGKILL)
        seen = count(database_url, "event_id LIKE $1", f"kc-{stream}-%")
    assert seen < total  # the kills really happened mid-run
    procs(processes.consumer(env, tmp_path, name="consumer-final"))
    wait_for_rows(database_url, f"kc-{stream}-%", total, {"sent"}, timeout=90)
    sandbox.wait_for(total, timeout=10)
    assert Counter(m.to for m in sandbox.messages("sms")) == expected_sms(range(total))
    assert redis_client.xlen(f"{stream}.dlq") == 0
    processes.wait_until(
        lambda: redis_client.xinfo_groups(stream)[0]["pending"] == 0, message="nothing pending"
    )


def test_worker_killed_mid_send_is_reconciled_without_duplicates(
    pipeline_env: dict[str, str],
    rules_file: Callable[[str], Path],
    procs: processes.Start,
    tmp_path: Path,
    redis_client: redis.Redis,
    sandbox: Sandbox,
    own_database: str,
) -> None:
    # Beat's sweeper would send the session database's other stuck rows too.
    database_url = own_database
    rules_file(RULES)
    env = {
        **pipeline_env,
        "DATABASE_URL": database_url,
        "NOTIFY_VISIBILITY_TIMEOUT_SECONDS": "3",
        "NOTIFY_STUCK_SECONDS": "2",
        "NOTIFY_SCHEDULE_INTERVAL_SECONDS": "1",
    }
    sandbox.set_latency(300, "sms")
    stream = env["NOTIFY_STREAM"]
    total = 40
    first = procs(processes.worker(env, tmp_path, name="worker-1"))
    first.wait_for_log("ready")
    procs(processes.consumer(env, tmp_path)).wait_for_log("consumer started")
    procs(processes.beat(env, tmp_path))
    publish_events(redis_client, stream, f"kw-{stream}", sms_only(range(total)))
    sending = "event_id LIKE $1 AND status = 'sending'"
    # Claimed rows wait 300 ms on the emulator: killing now lands in the unrecorded window.
    processes.wait_until(
        lambda: count(database_url, sending, f"kw-{stream}-%") >= 10, message="sends in flight"
    )
    first.stop(signal.SIGKILL)
    in_flight = count(database_url, sending, f"kw-{stream}-%")
    procs(processes.worker(env, tmp_path, name="worker-2")).wait_for_log("ready")
    wait_for_rows(database_url, f"kw-{stream}-%", total, {"sent"}, timeout=90)
    assert Counter(m.to for m in sandbox.messages("sms")) == expected_sms(range(total))
    assert in_flight > 0  # the kill really caught sends in the unrecorded window
    reconciled = rows(
        database_url, "event_id LIKE $1 AND error_code = 'worker_lost'", f"kw-{stream}-%"
    )
    assert all(r["status"] == "sent" for r in reconciled)


@pytest.fixture
def redis_db9(pipeline_env: dict[str, str]) -> Iterator[tuple[dict[str, str], redis.Redis]]:
    """Its own Redis database, so severing every client there touches nobody else."""
    url = pipeline_env["REDIS_URL"].rsplit("/", 1)[0] + "/9"
    env = {**pipeline_env, "REDIS_URL": url, "CELERY_BROKER_URL": url}
    client = redis.Redis.from_url(url)
    yield env, client
    client.delete(env["NOTIFY_STREAM"], env["NOTIFY_STREAM"] + ".dlq", env["NOTIFY_TASK_QUEUE"])
    client.close()


def sever_redis(client: redis.Redis) -> int:
    me = client.client_id()
    victims = [c["id"] for c in client.client_list() if c["db"] == "9" and c["id"] != str(me)]
    for victim in victims:
        client.execute_command("CLIENT", "KILL", "ID", victim)
    return len(victims)


def sever_postgres(database_url: str) -> int:
    async def run() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            return len(
                await conn.fetch(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
        finally:
            await conn.close()

    return asyncio.run(run())


def test_severed_redis_and_postgres_connections_lose_and_double_nothing(
    redis_db9: tuple[dict[str, str], redis.Redis],
    rules_file: Callable[[str], Path],
    procs: processes.Start,
    tmp_path: Path,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    env, client = redis_db9
    # The sweeper (on beat) is the safety net for tasks lost with a severed broker connection.
    env = {
        **env,
        "NOTIFY_VISIBILITY_TIMEOUT_SECONDS": "5",
        "NOTIFY_STUCK_SECONDS": "3",
        "NOTIFY_SCHEDULE_INTERVAL_SECONDS": "1",
    }
    rules_file(RULES)
    stream = env["NOTIFY_STREAM"]
    worker = procs(processes.worker(env, tmp_path, concurrency=16))
    worker.wait_for_log("ready")
    consumer = procs(processes.consumer(env, tmp_path))
    consumer.wait_for_log("consumer started")
    procs(processes.beat(env, tmp_path))
    total, chunk = 1200, 200
    severed = 0
    severs: Counter[str] = Counter()
    for start in range(0, total, chunk):
        publish_events(
            client, stream, f"sv-{stream}", sms_only(range(start, start + chunk)), first=start
        )
        processes.wait_until(
            lambda start=start: len(sandbox.messages("sms")) >= start + chunk // 2,
            timeout=60,
            message="progress",
        )
        service = "redis" if start // chunk % 2 == 0 else "postgres"
        severed += sever_redis(client) if service == "redis" else sever_postgres(database_url)
        severs[service] += 1
    assert severed > 0
    wait_for_rows(database_url, f"sv-{stream}-%", total, {"sent"}, timeout=120)
    assert Counter(m.to for m in sandbox.messages("sms")) == expected_sms(range(total))
    # One warning when an outage starts: not one per message, nor one per pooled connection
    # that died with the others, so at most one per sever. (A sever can also go unnoticed:
    # asyncpg replaces a connection it finds closed at acquire, and a Redis command on an
    # idle killed connection may be retried by redis-py itself.) The outcomes relay in the
    # same process keeps its own account, at most once per sever too.
    lines = consumer.log().splitlines()
    warned = Counter(
        service
        for line in lines
        for service in ("redis", "postgres")
        if f"{service} unavailable;" in line and "outbox relay" not in line
    )
    assert warned["redis"] <= severs["redis"] and warned["postgres"] <= severs["postgres"]
    assert warned.total() >= 1  # the severs were felt
    assert sum("outbox relay unavailable" in line for line in lines) <= severs.total()
