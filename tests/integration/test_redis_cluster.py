"""The pipeline on a real 3-master Redis Cluster (CONTRACT section 10): the event stream, the
dead-letter stream and the outcomes stream on three different masters, reached through the
node that holds none of them, by a real consumer, worker and CLI with NOTIFY_REDIS_CLUSTER.
The Celery broker stays on the plain Redis, as it must."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
import redis

from harness.launcher import free_port
from notify.country_breaker import CountryBreaker
from notify.country_breaker import key as country_key
from notify.redis_clients import sync_client_for
from sandbox import Sandbox
from tests.integration import processes
from tests.integration.helpers import notify, rows, scrape, shipment, value
from tests.integration.redis_cluster import RedisCluster

pytestmark = pytest.mark.integration

RULES = """
rules:
  - name: delay-sms
    on: shipment.delayed
    channel: sms
    to: "{{ data.customer.phone }}"
    body: "Shipment {{ data.shipment_id }} is {{ data.delay_minutes }} min late."
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """Started once for the module: creating a cluster takes seconds."""
    started = RedisCluster(tmp_path_factory.mktemp("redis-cluster")).start()
    yield started
    started.stop()


@pytest.fixture
def nodes(cluster: RedisCluster) -> Iterator[redis.RedisCluster]:
    """A client of the cluster for the test's own reads and writes."""
    client = cluster.client()
    yield client
    client.close()


def spread_names(cluster: RedisCluster) -> dict[str, str]:
    """Stream names (no hash tags) whose stream, dead letters and outcomes sit on three
    different masters, and on none of them the node REDIS_URL names."""
    entry = cluster.ports[0]
    for _ in range(10_000):
        tag = uuid.uuid4().hex[:8]
        stream, outcomes = f"cl-events-{tag}", f"cl-outcomes-{tag}"
        owners = [cluster.owner(k) for k in (stream, f"{stream}.dlq", outcomes)]
        if len(set(owners)) == 3 and entry in owners and owners[0] != entry:
            return {"NOTIFY_STREAM": stream, "NOTIFY_OUTCOMES_STREAM": outcomes}
    raise AssertionError("no spread of names found")


def test_stream_dead_letter_replay_and_outcomes_on_a_redis_cluster(
    cluster: RedisCluster,
    nodes: redis.RedisCluster,
    pipeline_env: dict[str, str],
    start_pipeline: processes.StartPipeline,
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    worker_port = free_port()
    names = spread_names(cluster)
    settings = {
        "REDIS_URL": cluster.url,
        "NOTIFY_REDIS_CLUSTER": "true",
        "NOTIFY_WORKER_METRICS_PORT": str(worker_port),
        # The send-rate limiter's schedule lives on the cluster too.
        "NOTIFY_SMS_SEGMENTS_PER_SECOND": "100",
        "NOTIFY_STREAM_SAMPLE_SECONDS": "1",
        **names,
    }
    pipeline_env.update(settings)
    env = start_pipeline(RULES).env
    stream = env["NOTIFY_STREAM"]
    dlq = f"{stream}.dlq"
    prefix = f"cl-{stream}"
    for n in range(5):
        published = notify(
            env, "publish", "shipment.delayed", "--data", json.dumps(shipment(n)),
            "--id", f"{prefix}-{n}", "--subject", f"S-{n}",
        )  # fmt: skip
        assert published.returncode == 0, published.stderr
    # `notify publish` refuses what the consumer would dead-letter: a producer's bad entry.
    nodes.xadd(stream, {"id": f"{prefix}-bad", "type": "shipment.delayed", "data": "[]"})

    def sent() -> int:
        return len(rows(database_url, "event_id LIKE $1 AND status = 'sent'", prefix + "%"))

    processes.wait_until(lambda: sent() == 5, message="five SMS sent")
    assert sorted(m.to for m in sandbox.messages("sms")) == [f"+1415555{n:04d}" for n in range(5)]

    processes.wait_until(lambda: nodes.xlen(dlq) == 1, message="one dead letter")
    listed = notify(env, "dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [letter] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (letter["reason"], letter["event_id"]) == ("not_object", f"{prefix}-bad")

    replayed = notify(env, "dlq", "replay", letter["id"])
    assert replayed.returncode == 0 and "replayed 1" in replayed.stdout, replayed.stderr
    # Back in the stream, read again, dead-lettered again: a new letter for the new entry.
    first = [letter["entry_id"].encode()]
    processes.wait_until(
        lambda: [f[b"_dlq_entry_id"] for _, f in nodes.xrange(dlq)] not in ([], first),
        message="the replayed entry dead-lettered again",
    )
    assert nodes.xlen(dlq) == 1

    # Every send reached the outcomes stream, relayed by the consumer.
    def outcome_ids() -> set[str]:
        return {
            json.loads(f[b"data"])["event_id"]
            for _, f in nodes.xrange(names["NOTIFY_OUTCOMES_STREAM"])
            if f[b"type"] == b"notification.sent"
        }

    processes.wait_until(
        lambda: outcome_ids() >= {f"{prefix}-{n}" for n in range(5)},
        message="five sent outcomes on the outcomes stream",
    )
    assert nodes.xinfo_groups(stream)[0]["pending"] == 0

    # The workers read lag on the cluster, and reserved send slots there.
    group = (("group", "notifications"), ("stream", stream))
    processes.wait_until(
        lambda: scrape(worker_port).get(("notify_stream_lag_unknown", group)) == 0,
        message="the workers' lag read from the cluster",
    )  # sampled every NOTIFY_STREAM_SAMPLE_SECONDS; the first read came before the stream
    samples = scrape(worker_port)
    assert samples[("notify_stream_lag", group)] == 0
    assert value(samples, "notify_sms_limiter_calls_total", sender="+15005550006") >= 1
    status = notify(env, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["stream"] == stream
    # Nothing of the pipeline's landed on the plain Redis except the Celery queue.
    assert not redis_client.exists(stream, dlq, names["NOTIFY_OUTCOMES_STREAM"])


def test_the_country_breaker_counts_on_a_redis_cluster(
    cluster: RedisCluster, nodes: redis.RedisCluster
) -> None:
    """CONTRACT section 14 on a cluster: each country's count is one key, changed by one
    single-key script, so any node routes it; two countries on two masters count apart."""
    names = ["GB", "US", "FR", "DE", "CA", "IE", "NL", "ES", "IT", "PL"]
    first = names[0]
    other = next(c for c in names[1:] if cluster.owner(country_key(c)) != cluster.owner(
        country_key(first)))  # fmt: skip
    nodes.delete(country_key(first), country_key(other))
    client = sync_client_for(cluster.url, cluster=True)
    try:
        breaker = CountryBreaker(client, 3)
        assert breaker.admit(first, [1, 1, 1, 1]) == [True, True, True, False]
        assert breaker.admit(other, [2, 1]) == [True, True]  # its own count
        assert breaker.admit(other, [1]) == [False]
        breaker.resume(first)
        assert breaker.admit(first, [1]) == [True]
        counted = breaker.count(first)
        assert counted.segments == 4 and counted.resumed_until is not None
    finally:
        client.close()
        nodes.delete(country_key(first), country_key(other))
