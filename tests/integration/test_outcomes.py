"""The outcomes stream through crashes: every outcome published, none lost, ids stable."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from notify.outbox import OutboxRelay
from notify.store import OutcomeStore
from sandbox import Sandbox
from tests.integration import processes
from tests.integration.helpers import SMS_ONLY, fetch, rows, shipment

pytestmark = pytest.mark.integration


def published(client: redis.Redis, stream: str, prefix: str) -> dict[str, list[dict[str, Any]]]:
    """Entries about events starting with `prefix`, by id: every copy (at least once)."""
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for _, raw in client.xrange(stream):  # type: ignore[union-attr]
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        fields["data"] = json.loads(fields["data"])
        # Suppression outcomes (no event) from other tests share the outbox: not ours.
        if str(fields["data"].get("event_id") or "").startswith(prefix):
            found[fields["id"]].append(fields)
    return found


def waiting(database_url: str, prefix: str) -> int:
    sql = """SELECT count(*) AS n FROM outcome_outbox o JOIN notifications n
             ON n.id::text = split_part(o.outcome_id, '-', 1) WHERE n.event_id LIKE $1"""
    return int(fetch(database_url, sql, prefix + "%")[0]["n"])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_every_outcome_is_published_through_sigkills_of_the_relay_and_a_worker(
    pipeline_env: dict[str, str],
    rules_file: Callable[[str], Path],
    procs: processes.Start,
    tmp_path: Path,
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    rules_file(SMS_ONLY)
    env = {
        **pipeline_env,
        "NOTIFY_CLAIM_IDLE_SECONDS": "1",
        "NOTIFY_BATCH_SIZE": "50",
        "NOTIFY_VISIBILITY_TIMEOUT_SECONDS": "3",
        "NOTIFY_STUCK_SECONDS": "2",
        "NOTIFY_SCHEDULE_INTERVAL_SECONDS": "1",
    }
    stream, outcomes = env["NOTIFY_STREAM"], env["NOTIFY_OUTCOMES_STREAM"]
    prefix, total = f"ok-{stream}-", 1500
    sandbox.set_latency(100, "sms")
    worker = procs(processes.worker(env, tmp_path, name="worker-1"))
    worker.wait_for_log("ready")
    consumer = procs(processes.consumer(env, tmp_path, name="consumer-1"))
    consumer.wait_for_log("consumer started")
    procs(processes.beat(env, tmp_path))
    pipe = redis_client.pipeline(transaction=False)
    for n in range(total):
        data = shipment(n, tokens=0)
        if n % 10 == 0:  # failed at once (invalid_recipient): an outcome from the consumer
            data["customer"]["phone"] = "not a number"
        pipe.xadd(
            stream, {"id": f"{prefix}{n}", "type": "shipment.delayed", "data": json.dumps(data)}
        )
    pipe.execute()
    sent = "event_id LIKE $1 AND status = 'sent'"
    processes.wait_until(lambda: len(rows(database_url, sent, prefix + "%")) >= 300, 60)
    # Mid-run: sends in flight on the worker, outcomes half relayed by the consumer.
    worker.stop(signal.SIGKILL)
    consumer.stop(signal.SIGKILL)
    in_flight = len(rows(database_url, "event_id LIKE $1 AND status = 'sending'", prefix + "%"))
    # No relay now: outcomes of what the next worker finishes wait in the outbox.
    procs(processes.worker(env, tmp_path, name="worker-2")).wait_for_log("ready")
    processes.wait_until(lambda: waiting(database_url, prefix) >= 100, 60, message="a backlog")
    relay = procs(processes.consumer(env, tmp_path, name="consumer-2"))
    before = redis_client.xlen(outcomes)
    processes.wait_until(lambda: redis_client.xlen(outcomes) > before, 30, interval=0.005)
    relay.stop(signal.SIGKILL)  # as soon as it has published something
    procs(processes.consumer(env, tmp_path, name="consumer-3"))

    def settled() -> bool:
        found = rows(database_url, "event_id LIKE $1", prefix + "%")
        final = len(found) == total and all(r["status"] in ("sent", "failed") for r in found)
        return final and waiting(database_url, prefix) == 0

    processes.wait_until(settled, 120, interval=0.25, message="every row final and relayed")
    final = rows(database_url, "event_id LIKE $1", prefix + "%")
    expected = {f"{r['id']}-{r['status']}" for r in final}
    copies = published(redis_client, outcomes, prefix)
    assert set(copies) == expected  # every outcome, and nothing for intermediate statuses
    assert sum(r["status"] == "failed" for r in final) >= total // 10
    assert in_flight > 0  # the worker died with sends in flight; the sweeper settled them
    for entries in copies.values():
        assert all(e == entries[0] for e in entries)  # a second copy is the same entry


RELAY_DIES_BEFORE_DELETE = """
import asyncio, os, signal, sys
import asyncpg
import redis.asyncio as aioredis
from notify.outbox import OutboxRelay
from notify.store import OutcomeStore

async def main(dsn, redis_url, stream):
    store = await OutcomeStore.connect(dsn)
    execute = asyncpg.Connection.execute
    async def die_before_delete(self, query, *args, **kwargs):
        if query.startswith("DELETE FROM outcome_outbox"):
            os.kill(os.getpid(), signal.SIGKILL)  # published, not yet marked done
        return await execute(self, query, *args, **kwargs)
    asyncpg.Connection.execute = die_before_delete
    await OutboxRelay(store.pool, aioredis.from_url(redis_url), stream, 1000).relay_once()

asyncio.run(main(*sys.argv[1:]))
"""


def test_a_relay_killed_between_publish_and_commit_publishes_again_with_the_same_ids(
    pipeline_env: dict[str, str], redis_client: redis.Redis, database_url: str
) -> None:
    outcomes = pipeline_env["NOTIFY_OUTCOMES_STREAM"]
    redis_url = pipeline_env["REDIS_URL"]

    async def relay_all(stream: str) -> None:
        store = await OutcomeStore.connect(database_url)
        client = aioredis.from_url(redis_url)
        try:
            while await OutboxRelay(store.pool, client, stream, 1000).relay_once():
                pass
        finally:
            await client.aclose()
            await store.close()

    asyncio.run(relay_all(outcomes + "-earlier"))  # other tests' leftovers out of the way
    redis_client.delete(outcomes + "-earlier")
    prefix = f"rk-{outcomes}-"
    made = fetch(
        database_url,
        """INSERT INTO notifications (idempotency_key, event_id, event_type, event_subject,
               rule, channel, recipient, body, status, error_code)
           SELECT $1 || g, $1 || g, 'shipment.delayed', 'SHP-' || g, 'delay-sms', 'sms',
               '+1415', 'hi', 'failed', 'invalid_recipient'
           FROM generate_series(1, 20) AS g RETURNING id""",
        prefix,
    )
    killed = subprocess.run(
        [sys.executable, "-c", RELAY_DIES_BEFORE_DELETE, database_url, redis_url, outcomes],
        cwd=processes.ROOT,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    first = published(redis_client, outcomes, prefix)
    assert set(first) == {f"{r['id']}-failed" for r in made}
    assert waiting(database_url, prefix) == 20  # its transaction never committed
    asyncio.run(relay_all(outcomes))
    again = published(redis_client, outcomes, prefix)
    assert waiting(database_url, prefix) == 0
    assert set(again) == set(first)
    for outcome_id, entries in again.items():
        assert len(entries) == 2 and entries[0] == entries[1], outcome_id
