"""Scheduled reminders with a real beat and worker: sent once, cancellable, restart-safe."""

from __future__ import annotations

import signal
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from sandbox import Sandbox
from tests.integration import processes
from tests.integration.helpers import publish, rows

pytestmark = pytest.mark.integration

RULES = """
rules:
  - name: reminder
    on: shipment.delayed
    channel: sms
    to: "{{ data.phone }}"
    body: "Reminder for {{ data.shipment_id }}"
    delay: "{{DELAY}}"
    cancel_on: [shipment.delivered, shipment.cancelled]
  - name: timed
    on: shipment.eta
    channel: sms
    to: "{{ data.phone }}"
    body: "Arriving {{ data.shipment_id }}"
    at: "{{ data.due }}"
    offset: -1s
"""


@pytest.fixture
def scheduled(start_pipeline: processes.StartPipeline) -> dict[str, str]:
    rules = RULES.replace("{{DELAY}}", "2s")
    return start_pipeline(rules, NOTIFY_SCHEDULE_INTERVAL_SECONDS="0.3").env


def beat_runs(beat: processes.Process) -> int:
    return beat.log().count("Sending due task dispatch-due")


def test_a_two_second_reminder_is_sent_exactly_once(
    scheduled: dict[str, str],
    procs: processes.Start,
    tmp_path: Path,
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    beat = procs(processes.beat(scheduled, tmp_path))
    beat.wait_for_log("beat: Starting")
    stream = scheduled["NOTIFY_STREAM"]
    publish(
        redis_client,
        stream,
        f"once-{stream}",
        "shipment.delayed",
        {"shipment_id": "S1", "phone": "+14155550101"},
        subject="S1",
    )
    processes.wait_until(
        lambda: (
            [r["status"] for r in rows(database_url, "event_id = $1", f"once-{stream}")]
            == ["scheduled"]
        ),
        message="scheduled",
    )
    sandbox.wait_for(1, timeout=20)
    row = rows(database_url, "event_id = $1", f"once-{stream}")[0]
    assert row["send_at"] is not None
    # Let beat run several more times: the row must not be dispatched again.
    seen = beat_runs(beat)
    processes.wait_until(lambda: beat_runs(beat) >= seen + 4, message="more beat runs")
    assert [m.to for m in sandbox.messages("sms")] == ["+14155550101"]
    processes.wait_until(
        lambda: rows(database_url, "event_id = $1", f"once-{stream}")[0]["status"] == "sent",
        message="row sent",
    )


def test_a_cancelled_reminder_is_never_sent(
    scheduled: dict[str, str],
    procs: processes.Start,
    tmp_path: Path,
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    stream = scheduled["NOTIFY_STREAM"]
    publish(
        redis_client,
        stream,
        f"keep-{stream}",
        "shipment.delayed",
        {"shipment_id": "K", "phone": "+14155550102"},
        subject="K",
    )
    publish(
        redis_client,
        stream,
        f"drop-{stream}",
        "shipment.delayed",
        {"shipment_id": "D", "phone": "+14155550103"},
        subject="D",
    )
    publish(redis_client, stream, f"other-{stream}", "shipment.delivered", {}, subject="K2")
    publish(redis_client, stream, f"stop-{stream}", "shipment.delivered", {}, subject="D")
    processes.wait_until(
        lambda: (
            [r["status"] for r in rows(database_url, "event_id = $1", f"drop-{stream}")]
            == ["cancelled"]
        ),
        message="cancelled",
    )
    beat = procs(processes.beat(scheduled, tmp_path))
    sandbox.wait_for(1, timeout=20)  # the kept reminder proves beat dispatched due rows
    seen = beat_runs(beat)
    processes.wait_until(lambda: beat_runs(beat) >= seen + 4, message="more beat runs")
    assert [m.to for m in sandbox.messages("sms")] == ["+14155550102"]
    dropped = rows(database_url, "event_id = $1", f"drop-{stream}")[0]
    assert dropped["status"] == "cancelled" and dropped["cancelled_by"] == f"stop-{stream}"


def test_restarting_beat_midway_neither_loses_nor_duplicates(
    scheduled: dict[str, str],
    procs: processes.Start,
    tmp_path: Path,
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    stream = scheduled["NOTIFY_STREAM"]
    beat = procs(processes.beat(scheduled, tmp_path, name="beat-1"))
    start = datetime.now(UTC)
    for n in range(30):
        due = start + timedelta(seconds=2 + n * 0.1)  # spread over 3 s, minus the 1 s offset
        publish(
            redis_client,
            stream,
            f"many-{stream}-{n}",
            "shipment.eta",
            {"shipment_id": f"M{n}", "phone": f"+1415555{n:04d}", "due": due.isoformat()},
            subject=f"M{n}",
        )
    sandbox.wait_for(1, timeout=20)
    assert len(sandbox.messages("sms")) < 30  # really midway
    beat.stop(signal.SIGKILL)  # mid-run, without a goodbye
    procs(processes.beat(scheduled, tmp_path, name="beat-2"))
    sandbox.wait_for(30, timeout=30)
    processes.wait_until(
        lambda: all(
            r["status"] == "sent"
            for r in rows(database_url, "event_id LIKE $1", f"many-{stream}-%")
        ),
        message="all sent",
    )
    received = Counter(m.to for m in sandbox.messages("sms"))
    assert received == Counter(f"+1415555{n:04d}" for n in range(30))
