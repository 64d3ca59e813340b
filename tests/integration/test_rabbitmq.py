"""The whole pipeline with RabbitMQ as the Celery broker (CONTRACT section 10): the consumer
publishes with confirms, a worker retries with backoff and waits for send slots through
broker countdowns, and beat hands out a reminder, all over AMQP on a vhost of this test's."""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from sandbox import Sandbox
from tests.integration import processes
from tests.integration.helpers import (
    SMS_AND_REMINDER,
    attempts,
    publish,
    publish_events,
    rows,
    shipment,
)
from tests.profiles import services_required

pytestmark = pytest.mark.integration

RABBITMQ = ("127.0.0.1", 5672)


def _rabbitmqctl(*args: str) -> str:
    binary = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"rabbitmqctl {' '.join(args)}: {done.stderr}"
    return done.stdout


def _require_rabbitmq() -> None:
    try:
        socket.create_connection(RABBITMQ, 1).close()
    except OSError:
        message = "RabbitMQ is not reachable at 127.0.0.1:5672"
        if services_required():
            pytest.fail(message)  # in CI a missing service is a failure, never a skip
        pytest.skip(message)


@pytest.fixture
def amqp_url() -> Iterator[str]:
    """A vhost of this test's own, guest allowed everything on it; deleted afterwards."""
    _require_rabbitmq()
    vhost = f"notify-test-{uuid.uuid4().hex[:8]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{RABBITMQ[0]}:{RABBITMQ[1]}/{vhost}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


def _queue_depths(vhost: str) -> dict[str, int]:
    out = _rabbitmqctl(
        "list_queues", "-p", vhost, "--quiet", "--no-table-headers", "name", "messages"
    )
    return {name: int(n) for name, n in (line.split("\t") for line in out.splitlines() if line)}


def test_retries_send_slot_waits_and_a_reminder_go_through_rabbitmq(
    amqp_url: str,
    start_pipeline: processes.StartPipeline,
    procs: processes.Start,
    tmp_path: Path,
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    pipeline = start_pipeline(
        SMS_AND_REMINDER,
        CELERY_BROKER_URL=amqp_url,
        NOTIFY_SCHEDULE_INTERVAL_SECONDS="0.3",
        # Eight SMS at four a second: most wait for a slot, as a broker countdown.
        NOTIFY_SMS_SEGMENTS_PER_SECOND="4",
    )
    env = pipeline.env
    procs(processes.beat(env, tmp_path)).wait_for_log("beat: Starting")
    stream, queue = env["NOTIFY_STREAM"], env["NOTIFY_TASK_QUEUE"]
    prefix = f"amqp-{stream}"
    sandbox.queue_errors("sms", [{"status": 429, "code": 20429, "retry_after": 1}])
    publish(redis_client, stream, f"{prefix}-retry", "shipment.delayed", shipment(0), "S-0")
    publish_events(redis_client, stream, prefix, map(shipment, range(1, 8)), first=1)
    publish(redis_client, stream, f"{prefix}-rem", "shipment.booked", shipment(9), "S-9")

    def sent() -> list[dict[str, object]]:
        return rows(database_url, "event_id LIKE $1 AND status = 'sent'", prefix + "%")

    processes.wait_until(lambda: len(sent()) == 9, timeout=60, message="9 SMS sent")
    by_event = {r["event_id"]: r for r in sent()}
    retried = by_event[f"{prefix}-retry"]
    outcomes = [(a["outcome"], a["error_code"]) for a in attempts(database_url, retried["id"])]
    assert outcomes == [("transient_error", "20429"), ("sent", None)]
    assert by_event[f"{prefix}-rem"]["send_at"] is not None  # held back, then beat's
    assert sorted(m.to for m in sandbox.messages("sms")) == sorted(
        f"+1415555{n:04d}" for n in (*range(8), 9)
    )
    # The consumer publishes send_batch only: single sends are the retry's, the slot waits'
    # and beat's, each a message a worker published to RabbitMQ.
    assert "Task tasks.send_sms[" in pipeline.worker.log()
    # The tasks went through RabbitMQ, not the Redis that holds the stream.
    assert not redis_client.exists(queue)
    vhost = amqp_url.rsplit("/", 1)[1]
    processes.wait_until(
        lambda: _queue_depths(vhost).get(queue) == 0, message=f"{queue} declared and drained"
    )


def test_the_sweeper_re_enqueues_tasks_rabbitmq_lost(
    amqp_url: str,
    start_pipeline: processes.StartPipeline,
    procs: processes.Start,
    tmp_path: Path,
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    """Tasks purged from the queue (a broker that lost its messages) while no worker ran:
    beat's sweeper finds the rows still `pending` and re-publishes them through RabbitMQ."""
    pipeline = start_pipeline(
        SMS_AND_REMINDER, CELERY_BROKER_URL=amqp_url, NOTIFY_STUCK_SECONDS="2"
    )
    env, vhost = pipeline.env, amqp_url.rsplit("/", 1)[1]
    stream, queue = env["NOTIFY_STREAM"], env["NOTIFY_TASK_QUEUE"]
    pipeline.worker.stop()
    prefix = f"lost-{stream}"
    publish_events(redis_client, stream, prefix, map(shipment, range(6)))

    def pending() -> int:
        return len(rows(database_url, "event_id LIKE $1 AND status = 'pending'", prefix + "%"))

    processes.wait_until(lambda: pending() == 6, message="six rows pending, their tasks queued")
    processes.wait_until(lambda: _queue_depths(vhost).get(queue, 0) > 0, message="tasks queued")
    _rabbitmqctl("purge_queue", "-p", vhost, queue)
    assert _queue_depths(vhost)[queue] == 0
    procs(processes.worker(env, tmp_path, name="worker-2")).wait_for_log("ready")
    procs(processes.beat(env, tmp_path)).wait_for_log("beat: Starting")

    def sent() -> int:
        return len(rows(database_url, "event_id LIKE $1 AND status = 'sent'", prefix + "%"))

    processes.wait_until(lambda: sent() == 6, timeout=60, message="six swept rows sent")
    assert sorted(m.to for m in sandbox.messages("sms")) == [f"+1415555{n:04d}" for n in range(6)]
