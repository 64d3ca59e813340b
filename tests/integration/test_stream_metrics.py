"""Lag and pending from the workers' endpoint, and counters that start at 0 on both sides."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from harness.launcher import free_port, wait_until
from schemas import Channel, DeadLetterReason, Reason
from tests.integration import processes

pytestmark = pytest.mark.integration


def samples(port: int, name: str) -> list[Sample]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


def one(port: int, name: str, **labels: str) -> float | None:
    """The value of the one sample with exactly these labels; None when it is not served."""
    found = [s.value for s in samples(port, name) if s.labels == labels]
    assert len(found) <= 1, f"{name}{labels} served {len(found)} times"
    return found[0] if found else None


def backlog(client: redis.Redis, stream: str, group: str, *, delivered: int, total: int) -> None:
    """A group whose consumer read `delivered` of `total` entries, acknowledged none, and died."""
    client.xgroup_create(stream, group, id="0", mkstream=True)
    for n in range(total):
        client.xadd(stream, {"id": f"e{n}", "type": "shipment.delayed", "data": "{}"})
    client.xreadgroup(group, "gone", {stream: ">"}, count=delivered)


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_workers_serve_lag_and_pending_while_no_consumer_runs(
    pool: str,
    pipeline_env: dict[str, str],
    procs: processes.Start,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {
        **pipeline_env,
        "NOTIFY_WORKER_METRICS_PORT": str(port),
        "NOTIFY_STREAM_SAMPLE_SECONDS": "0.5",
    }
    if pool == "prefork":  # the merged multiprocess view must hold the gauges exactly once
        (tmp_path / "prom").mkdir()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "prom")
    stream, group = env["NOTIFY_STREAM"], env["NOTIFY_GROUP"]
    backlog(redis_client, stream, group, delivered=2, total=7)
    worker = procs(processes.worker(env, tmp_path, pool=pool, concurrency=2))
    worker.wait_for_log("ready")

    labels = {"stream": stream, "group": group}
    wait_until(lambda: one(port, "notify_stream_lag", **labels) == 5, timeout=15, message="lag 5")
    assert one(port, "notify_stream_pending", **labels) == 2
    assert one(port, "notify_stream_lag_unknown", **labels) == 0

    redis_client.xadd(stream, {"id": "late", "type": "shipment.delayed", "data": "{}"})
    wait_until(lambda: one(port, "notify_stream_lag", **labels) == 6, timeout=5, message="lag 6")
    for name in ("notify_stream_lag", "notify_stream_pending", "notify_stream_lag_unknown"):
        assert [s.labels for s in samples(port, name)] == [labels], name  # once, no pid label

    for channel in Channel:
        for status in ("sent", "failed", "retried"):
            assert one(port, "notify_notifications_total", channel=channel, status=status) == 0
        skipped = one(port, "notify_notifications_skipped_total", channel=channel,
                      reason="suppressed")  # fmt: skip
        assert skipped == 0
        for reason in Reason:
            assert one(port, "notify_suppressions_total", channel=channel, reason=reason) == 0


def test_consumer_counters_start_at_zero(
    start_pipeline: processes.StartPipeline,
) -> None:
    port = free_port()
    rules = """
rules:
  - name: delay-sms
    on: [shipment.delayed, "order.*"]
    channel: sms
    to: "{{ data.phone }}"
    body: "late"
    delay: 1m
    cancel_on: shipment.delivered
"""
    start_pipeline(rules, NOTIFY_METRICS_PORT=str(port))
    for reason in DeadLetterReason:
        assert one(port, "notify_dead_letters_total", reason=reason) == 0, reason
    assert one(port, "notify_events_total", type="", outcome="invalid") == 0
    for event_type in ("shipment.delayed", "shipment.delivered"):
        for outcome in ("routed", "unmatched", "no_notifications", "duplicate"):
            assert one(port, "notify_events_total", type=event_type, outcome=outcome) == 0
    assert not [s for s in samples(port, "notify_events_total") if "*" in s.labels["type"]]
    for channel in Channel:
        for status in ("pending", "scheduled", "failed", "skipped"):
            value = one(port, "notify_notifications_inserted_total", channel=channel, status=status)
            assert value == 0, (channel, status)
        for reason in ("throttled", "suppressed"):
            value = one(port, "notify_notifications_skipped_total", channel=channel, reason=reason)
            assert value == 0, (channel, reason)
