"""Redis killed with events in the stream: with AOF every acknowledged XADD is processed
exactly once; without it the unconsumed ones are gone (and the consumer carries on).

The test runs its own `redis-server` (AOF with `appendfsync always`, so the property is
exact) on a spare port for the event stream only. The Celery broker stays on the main
Redis: the property under test is the stream's, Celery's broker reconnection (backoff of
seconds) would make the run slow and its timing loose, and a task lost with a broker is
the sweeper's job, tested in test_faults.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from harness.launcher import free_port
from sandbox import Sandbox
from tests.integration import processes
from tests.integration.helpers import RULES, publish, rows, shipment
from tests.profiles import services_required

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(120)]

UP = (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError)


class RedisServer:
    """A redis-server of the test's own, killed and restarted on the same port and dir."""

    def __init__(self, directory: Path, fsync: str | None) -> None:
        self.port = free_port()
        persistence = ["--appendonly", "yes", "--appendfsync", fsync] if fsync else []
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--dir", str(directory), "--appendonly", "no", *persistence]
        self.process = processes.Process("redis", args, os.environ, directory)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process.start()
        client = redis.Redis.from_url(self.url)

        def ready() -> bool:  # answering, and done loading the AOF
            try:
                return bool(client.ping())
            except UP:
                return False

        processes.wait_until(ready, timeout=15, message="redis-server to answer")
        client.close()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Callable[[str | None], RedisServer]]:
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed"
        pytest.fail(message) if services_required() else pytest.skip(message)
    servers: list[RedisServer] = []

    def make(fsync: str | None) -> RedisServer:
        directory = tmp_path / "redis-data"
        directory.mkdir()
        servers.append(RedisServer(directory, fsync))
        servers[-1].start()
        return servers[-1]

    yield make
    for server in servers:
        server.process.stop(signal.SIGKILL)


@pytest.mark.parametrize("fsync", ["always", None], ids=["aof", "no-persistence"])
def test_acknowledged_events_survive_a_redis_kill_exactly_once(
    fsync: str | None,
    own_redis: Callable[[str | None], RedisServer],
    pipeline_env: dict[str, str],
    rules_file: Callable[[str], Path],
    procs: processes.Start,
    tmp_path: Path,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    server = own_redis(fsync)
    rules_file(RULES)
    name = f"durable-{uuid.uuid4().hex[:8]}"
    env = {
        **pipeline_env,  # the broker stays on the main Redis (see the module docstring)
        "REDIS_URL": f"{server.url}?client_name={name}",
        "NOTIFY_BLOCK_MS": "200",
        # A read whose reply died with the server is pending on this very consumer: take it
        # back soon rather than after the default minute.
        "NOTIFY_CLAIM_IDLE_SECONDS": "2",
    }
    stream = env["NOTIFY_STREAM"]
    client = redis.Redis.from_url(server.url)
    procs(processes.worker(env, tmp_path, concurrency=16)).wait_for_log("ready")
    consumer = procs(processes.consumer(env, tmp_path))
    consumer.wait_for_log("consumer started")
    acked: list[int] = []
    refused: list[int] = []

    def publish_range(numbers: range) -> None:
        for n in numbers:
            try:
                publish(client, stream, f"{stream}-{n}", "shipment.delayed", shipment(n, tokens=0))
            except UP:
                refused.append(n)
            else:
                acked.append(n)

    def blocked() -> bool:
        mine = [c for c in client.client_list() if c["name"] == name]
        return any(c["cmd"] == "xreadgroup" and "b" in c["flags"] for c in mine)

    # Some consumed before the kill, all of them, so what the stream holds at the kill is
    # known exactly ...
    publish_range(range(200))
    processes.wait_until(
        lambda: (
            len(rows(database_url, "event_id LIKE $1", f"{stream}-%")) == 200
            and client.xinfo_groups(stream)[0]["pending"] == 0
        ),
        message="the first 200 consumed",
    )
    # ... then some only in the stream: the consumer frozen outside a blocking read ...
    os.kill(consumer.pid, signal.SIGSTOP)
    try:
        processes.wait_until(lambda: not blocked(), message="the frozen consumer's read to end")
        publish_range(range(200, 500))
        # ... and some read by a consumer that dies with the server: pending, never acked.
        ghost = client.xreadgroup(env["NOTIFY_GROUP"], "ghost", {stream: ">"}, count=50)
        assert len(ghost[0][1]) == 50
        server.process.stop(signal.SIGKILL)
        publish_range(range(500, 520))  # refused while the server is down
    finally:
        os.kill(consumer.pid, signal.SIGCONT)
    server.start()
    client = redis.Redis.from_url(server.url)
    publish_range(range(520, 700))
    assert acked == [*range(500), *range(520, 700)] and refused == list(range(500, 520))

    survivors = acked if fsync else [*range(200), *range(520, 700)]
    expected = Counter(f"+1415555{n:04d}" for n in survivors)

    def settled() -> bool:
        return Counter(m.to for m in sandbox.messages("sms")) == expected and all(
            r["status"] == "sent" for r in rows(database_url, "event_id LIKE $1", f"{stream}-%")
        )

    processes.wait_until(
        settled,
        timeout=60,
        interval=0.25,
        message=lambda: f"{sum(expected.values())} SMS; got {len(sandbox.messages('sms'))}",
    )
    stored = rows(database_url, "event_id LIKE $1", f"{stream}-%")
    assert Counter(r["event_id"] for r in stored) == Counter(f"{stream}-{n}" for n in survivors)
    messages = sandbox.messages("sms")
    assert sorted(r["provider_message_id"] for r in stored) == sorted(m.id for m in messages)
    assert client.xinfo_groups(stream)[0]["pending"] == 0
    resets = consumer.log().count("stream or consumer group lost")
    assert resets == (0 if fsync else 1)
    client.close()
