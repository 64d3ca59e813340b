"""What operators touch: /metrics on consumer and worker, `notify status`, `notify dlq`."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path

import pytest
import redis

from harness.launcher import free_port
from notify.database import drop_database, with_database
from notify.migrations import MIGRATIONS
from sandbox import Sandbox
from schemas.decoding import decode_entry
from tests.integration import processes
from tests.integration.helpers import notify, publish, scrape, shipment, value

pytestmark = pytest.mark.integration


def test_metrics_status_and_dead_letter_replay(
    pipeline_env: dict[str, str],
    start_pipeline: processes.StartPipeline,
    redis_client: redis.Redis,
    sandbox: Sandbox,
) -> None:
    ports = {
        "NOTIFY_METRICS_PORT": str(free_port()),
        "NOTIFY_WORKER_METRICS_PORT": str(free_port()),
    }
    env = {**pipeline_env, **ports}
    stream, group = env["NOTIFY_STREAM"], env["NOTIFY_GROUP"]
    assert notify(env, "status").returncode != 0  # no group yet: non-zero, with a reason
    consumer = start_pipeline(**ports).consumer
    for n in range(3):
        publish(redis_client, stream, f"ops-{stream}-{n}", "shipment.delayed", shipment(n))
    publish(
        redis_client,
        stream,
        f"ops-{stream}-cold",
        "shipment.delayed",
        shipment(9, delay=5, tokens=0),
    )  # its type matches two rules: one's condition is false, the other's `to` is empty
    publish(redis_client, stream, f"ops-{stream}-lost", "parcel.lost", shipment(8))  # no rule
    publish(redis_client, stream, f"ops-{stream}-0", "shipment.delayed", shipment(0))  # again
    redis_client.xadd(stream, {"id": "broken", "type": "shipment.delayed", "data": "[]"})
    sandbox.wait_for(6, timeout=30)

    consumer_port = int(env["NOTIFY_METRICS_PORT"])
    processes.wait_until(
        lambda: (
            value(scrape(consumer_port), "notify_stream_pending", stream=stream, group=group) == 0
            and value(
                scrape(consumer_port),
                "notify_events_total",
                type="shipment.delayed",
                outcome="routed",
            )
            == 3
        ),
        timeout=15,
        message="consumer metrics",
    )
    c = scrape(consumer_port)
    assert value(c, "notify_events_total", type="shipment.delayed", outcome="duplicate") == 1
    # Matched by type, nothing produced: its own outcome, not `unmatched` (no rule listens).
    assert value(c, "notify_events_total", type="shipment.delayed", outcome="no_notifications") == 1
    assert value(c, "notify_events_total", type="shipment.delayed", outcome="unmatched") == 0
    assert value(c, "notify_events_total", type="parcel.lost", outcome="unmatched") == 1
    logged = {line["event_id"]: (line["msg"], line["outcome"]) for line in
              map(json.loads, consumer.log().splitlines()) if "outcome" in line}  # fmt: skip
    assert logged[f"ops-{stream}-cold"] == ("event no notifications", "no_notifications")
    assert logged[f"ops-{stream}-lost"] == ("event unmatched", "unmatched")
    assert value(c, "notify_dead_letters_total", reason="not_object") == 1
    assert value(c, "notify_stream_lag", stream=stream, group=group) == 0
    assert value(c, "notify_stream_lag_unknown", stream=stream, group=group) == 0
    assert any(name == "notify_rules_info" for name, _ in c)

    worker_port = int(env["NOTIFY_WORKER_METRICS_PORT"])
    processes.wait_until(
        lambda: (
            value(scrape(worker_port), "notify_notifications_total", channel="push", status="sent")
            == 3
        ),
        timeout=15,
        message="worker metrics",
    )
    w = scrape(worker_port)
    assert value(w, "notify_notifications_total", channel="sms", status="sent") == 3
    assert value(w, "notify_send_seconds_count", channel="sms") == 3

    status = notify(env, "status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert (report["length"], report["lag"], report["pending"], report["dead_letters"]) == (
        7,
        0,
        0,
        1,
    )
    assert report["notifications_last_hour"]["sent"] >= 6

    listed = notify(env, "dlq", "list", "--json")
    [letter] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert letter["reason"] == "not_object"
    assert (letter["event_id"], letter["type"]) == ("broken", "shipment.delayed")
    [row] = notify(env, "dlq", "list").stdout.splitlines()[1:-1]
    assert row.split()[2:5] == ["broken", "shipment.delayed", "not_object"]
    both = notify(env, "dlq", "replay", letter["id"], "--all")
    assert both.returncode == 2 and "not both" in both.stderr
    typo = notify(env, "dlq", "replay", "1-1")
    assert (typo.returncode, typo.stdout) == (1, f"replayed 0 entries to {stream}\n")
    assert typo.stderr == f"notify dlq replay: no dead letter '1-1' in {stream}.dlq\n"
    replayed = notify(env, "dlq", "replay", letter["id"])
    assert replayed.returncode == 0 and "replayed 1" in replayed.stdout
    # The replayed entry is still malformed, so it comes back as a new dead letter.
    processes.wait_until(
        lambda: (
            redis_client.xlen(f"{stream}.dlq") == 1
            and redis_client.xrange(f"{stream}.dlq")[0][0].decode() != letter["id"]
        ),
        message="replayed entry dead-lettered again",
    )


def test_prefork_workers_export_one_merged_view(
    start_pipeline: processes.StartPipeline,
    tmp_path: Path,
    redis_client: redis.Redis,
    sandbox: Sandbox,
) -> None:
    port = free_port()
    (tmp_path / "prom").mkdir()
    (tmp_path / "prom" / "stale_counter_999.db").write_bytes(b"left from a previous run")
    env = start_pipeline(
        pool="prefork", concurrency=2, NOTIFY_WORKER_METRICS_PORT=str(port),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"),
    ).env  # fmt: skip
    stream = env["NOTIFY_STREAM"]
    for n in range(6):
        publish(redis_client, stream, f"pf-{stream}-{n}", "shipment.delayed", shipment(n))
    sandbox.wait_for(12, timeout=30)
    processes.wait_until(lambda: value(scrape(port), "notify_notifications_total",
                                       channel="sms", status="sent") == 6
                         and value(scrape(port), "notify_notifications_total",
                                   channel="push", status="sent") == 6,
                         timeout=15, message="merged worker metrics")  # fmt: skip
    assert not (tmp_path / "prom" / "stale_counter_999.db").exists()  # wiped at start


def test_publish_takes_stdin_and_refuses_what_the_consumer_would_dead_letter(
    pipeline_env: dict[str, str], redis_client: redis.Redis
) -> None:
    stream = pipeline_env["NOTIFY_STREAM"]
    published = notify(pipeline_env, "publish", "shipment.delayed", "--data", "-",
                       input=json.dumps(shipment(1)))  # fmt: skip
    assert published.returncode == 0, published.stderr
    [(entry_id, fields)] = redis_client.xrange(stream)
    event = decode_entry(entry_id.decode(), fields, 65536)
    assert (event.id, event.data) == (json.loads(published.stdout)["id"], shipment(1))
    late = notify(pipeline_env, "publish", "shipment.delayed", "--data", "{}", "--time", "soon")
    assert late.returncode == 2
    assert late.stderr == (
        "notify publish: the consumer would dead-letter this (bad_time: time 'soon' is not "
        "RFC 3339)\n"
    )
    assert redis_client.xlen(stream) == 1


def test_migrate_says_what_it_did(database_url: str) -> None:
    """On a new database it lists every migration it applied, never "up to date"."""
    url = with_database(database_url, f"notify_tmp_{uuid.uuid4().hex[:8]}")
    env = {**os.environ, "DATABASE_URL": url}
    try:
        first = notify(env, "migrate")
        assert first.returncode == 0, first.stderr
        lines = first.stdout.splitlines()
        assert lines[0] == "created the database"
        assert lines[1].startswith("applied migrations 1 (notifications and attempts), ")
        assert all(f"{v} (" in lines[1] for v, _, _ in MIGRATIONS)
        newest = max(v for v, _, _ in MIGRATIONS)
        assert lines[2:] == [f"the schema is at version {newest}"]
        assert "up to date" not in first.stdout
        again = notify(env, "migrate")
        assert again.stdout == (
            f"the schema was already up to date (version {newest}); nothing applied\n"
        )
    finally:
        asyncio.run(drop_database(url))
