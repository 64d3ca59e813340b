"""Sending politely with real workers, beat, Redis and the emulator: the send rate holds
across processes and counts segments, Messaging Services, quiet hours, throttles."""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis

from sandbox import RecordedMessage, Sandbox
from tests.integration import processes
from tests.integration.helpers import count, publish, publish_events, rows

pytestmark = pytest.mark.integration

RATE = 8.0  # segments per second
LONG_BODY = "Your parcel is late. " * 10  # 210 GSM-7 characters: 2 segments

RATE_RULES = """
rules:
  - name: paced
    on: shipment.delayed
    channel: sms
    to: "{{ data.phone }}"
    body: "{{ data.text }}"
"""


def sender_number() -> str:
    return f"+1500555{random.randrange(10_000):04d}"


def spans(messages: list[RecordedMessage]) -> list[float]:
    return [b - a for a, b in pairwise(sorted(m.received_at for m in messages))]


def texts(text: str, count: int) -> list[dict[str, str]]:
    """`count` events of RATE_RULES sending `text`, each to its own number."""
    return [{"phone": f"+1415555{n:04d}", "text": text} for n in range(count)]


@pytest.mark.slow
def test_the_rate_holds_across_two_workers_and_counts_segments(
    start_pipeline: processes.StartPipeline,
    procs: processes.Start,
    tmp_path: Path,
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    number = sender_number()
    pipeline = start_pipeline(
        RATE_RULES,
        TWILIO_PHONE_NUMBER=number,
        NOTIFY_SMS_SEGMENTS_PER_SECOND=str(RATE),
        NOTIFY_TASK_BATCH_SIZE="4",  # many small batches, so both workers take some
        # A 3 s horizon: slots further ahead wait in Postgres and beat hands them out.
        NOTIFY_VISIBILITY_TIMEOUT_SECONDS="6",
        NOTIFY_SCHEDULE_INTERVAL_SECONDS="0.5",
    )
    env = pipeline.env
    second = procs(processes.worker(env, tmp_path, name="worker2"))
    second.wait_for_log("ready")
    beat = procs(processes.beat(env, tmp_path))  # hands out slots too far for a countdown
    beat.wait_for_log("beat: Starting")
    stream, tag = env["NOTIFY_STREAM"], uuid.uuid4().hex[:8]
    try:
        publish_events(redis_client, stream, f"{tag}-short", texts("Your parcel is late.", 32))
        short = sandbox.wait_for(32, timeout=60, channel="sms")
        sandbox.reset()
        publish_events(redis_client, stream, f"{tag}-long", texts(LONG_BODY, 16))
        long = sandbox.wait_for(16, timeout=60, channel="sms")
    finally:
        redis_client.delete(f"notify:send-rate:{number}")
    for messages, segments in ((short, 1), (long, 2)):
        times = sorted(m.received_at for m in messages)
        per_message = segments / RATE
        # Never faster than the rate, whatever the machine's load: the k-th message goes no
        # earlier than k slots after the first (a late one may bunch with the next, never
        # overtake the schedule); 0.15 s covers HTTP jitter before the emulator's stamp.
        assert all(t - times[0] >= k * per_message - 0.15 for k, t in enumerate(times))
        # And it does go at about that rate (generous: the machine is shared).
        assert times[-1] - times[0] <= (len(times) - 1) * per_message * 1.6
    # A 2-segment body goes out at half the message rate of a 1-segment one.
    ratio = (sum(spans(long)) / 15) / (sum(spans(short)) / 31)
    assert 1.6 <= ratio <= 2.5, ratio
    # Both processes sent, sharing one schedule; beat handed out the far slots; and
    # waiting for a slot cost no attempts.
    logs = [(tmp_path / name).read_text() for name in ("worker.log", "worker2.log")]
    assert all('"msg": "sent"' in log for log in logs), "a worker sent nothing"
    assert any("handed out send slots" in log for log in logs)  # beat's task runs on a worker
    # The emulator stamps a message before its worker records the answer: wait for that.
    processes.wait_until(
        lambda: count(database_url, "event_id LIKE $1 AND status = 'sending'", f"{tag}-%") == 0,
        message="every answer recorded",
    )
    sent = rows(database_url, "event_id LIKE $1", f"{tag}-%")
    assert {(r["status"], r["attempts"]) for r in sent} == {("sent", 1)}
    assert all(m.sender == number for m in short + long)


def test_a_messaging_service_send_carries_its_sid_and_no_from(
    start_pipeline: processes.StartPipeline, redis_client: redis.Redis, sandbox: Sandbox
) -> None:
    service = "MG" + uuid.uuid4().hex
    env = start_pipeline(RATE_RULES, TWILIO_MESSAGING_SERVICE_SID=service).env
    publish(redis_client, env["NOTIFY_STREAM"], f"mg-{service}", "shipment.delayed",
            {"phone": "+14155550123", "text": "via the service"})  # fmt: skip
    [message] = sandbox.wait_for(1, timeout=20, channel="sms")
    assert message.payload["MessagingServiceSid"] == service
    assert "From" not in message.payload
    assert message.sender == service


def window_around_now(zone: str, ends_in: timedelta) -> tuple[str, datetime]:
    """A quiet window that started an hour ago in `zone` and ends on the first whole
    minute at least `ends_in` from now; and that end as an instant."""
    now = datetime.now(ZoneInfo(zone))
    end = (now + ends_in).replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = now - timedelta(hours=1)
    return f"{start:%H:%M}-{end:%H:%M}", end.astimezone(UTC)


QUIET_RULES = """
rules:
  - name: explicit-zone
    on: shipment.delayed
    channel: sms
    to: "{{ data.phone }}"
    body: "Good morning from Tokyo"
    quiet_hours: "TOKYO_WINDOW"
    timezone: "{{ data.tz }}"
  - name: own-zone
    on: shipment.delayed
    channel: sms
    to: "{{ data.phone }}"
    body: "Good morning from San Francisco"
    quiet_hours: "LA_WINDOW"
    cancel_on: shipment.delivered
  - name: urgent
    on: shipment.delayed
    channel: sms
    to: "{{ data.phone }}"
    body: "Urgent, whatever the hour"
    quiet_hours: "LA_WINDOW"
    urgent: true
"""


@pytest.mark.slow
def test_quiet_hours_schedule_to_the_windows_end_and_urgent_overrides_them(
    start_pipeline: processes.StartPipeline,
    procs: processes.Start,
    tmp_path: Path,
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    pipeline = start_pipeline(RATE_RULES, NOTIFY_SCHEDULE_INTERVAL_SECONDS="0.5")
    env = pipeline.env
    beat = procs(processes.beat(env, tmp_path))
    beat.wait_for_log("beat: Starting")
    # Windows around the current time, written once everything runs (hot reload), so the
    # Tokyo one, ending within about a minute, is still open when the event is routed.
    tokyo_window, tokyo_end = window_around_now("Asia/Tokyo", timedelta(seconds=10))
    la_window, la_end = window_around_now("America/Los_Angeles", timedelta(minutes=30))
    rules = QUIET_RULES.replace("TOKYO_WINDOW", tokyo_window).replace("LA_WINDOW", la_window)
    Path(env["NOTIFY_RULES"]).write_text(rules)
    pipeline.consumer.wait_for_log("rules reloaded")
    stream, event = env["NOTIFY_STREAM"], f"quiet-{uuid.uuid4().hex[:8]}"
    data = {"phone": "+14155550142", "tz": "Asia/Tokyo"}  # a San Francisco number
    publish(redis_client, stream, event, "shipment.delayed", data, subject=event)
    processes.wait_until(lambda: count(database_url, "event_id = $1", event) == 3,
                         message="three rows")  # fmt: skip
    by_rule = {r["rule"]: r for r in rows(database_url, "event_id = $1", event)}
    # In the rule's zone, and in the number's own zone: scheduled for the window's end.
    assert (by_rule["explicit-zone"]["status"], by_rule["explicit-zone"]["send_at"]) == (
        "scheduled", tokyo_end,
    )  # fmt: skip
    assert (by_rule["own-zone"]["status"], by_rule["own-zone"]["send_at"]) == (
        "scheduled", la_end,
    )  # fmt: skip
    # Urgent goes at once.
    [first] = sandbox.wait_for(1, timeout=20, channel="sms")
    assert first.body == "Urgent, whatever the hour"
    # The waiting one is cancellable like any scheduled row ...
    publish(redis_client, stream, f"{event}-delivered", "shipment.delivered", {}, subject=event)
    processes.wait_until(
        lambda: (
            rows(database_url, "event_id = $1 AND rule = 'own-zone'", event)[0]["status"]
            == "cancelled"
        ),
        message="own-zone cancelled",
    )
    # ... and beat sends the other when Tokyo's window ends, not before.
    second = sandbox.wait_for(2, timeout=90, channel="sms")[1]
    assert second.body == "Good morning from Tokyo"
    assert second.received_at >= tokyo_end.timestamp()
    assert math.isclose(second.received_at, tokyo_end.timestamp(), abs_tol=5)


THROTTLE_RULES = """
rules:
  - name: late-once
    on: shipment.delayed
    channel: sms
    to: "{{ data.phone }}"
    body: "Shipment {{ event.subject }} is late"
    throttle: {key: "{{ event.subject }}", limit: 1, window: 30m}
"""


def test_the_throttle_sends_one_of_three_events_for_a_key(
    start_pipeline: processes.StartPipeline,
    procs: processes.Start,
    tmp_path: Path,
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    env = start_pipeline(THROTTLE_RULES).env
    # A second consumer in the group: the three events may be routed at the same moment.
    other = procs(processes.consumer(env, tmp_path, name="consumer2"))
    other.wait_for_log("consumer started")
    stream, subject = env["NOTIFY_STREAM"], f"SHP-{uuid.uuid4().hex[:8]}"
    data = {"phone": "+14155550177"}
    pipe = redis_client.pipeline(transaction=False)
    for n in range(3):
        fields = {"id": f"{subject}-{n}", "type": "shipment.delayed", "subject": subject,
                  "data": '{"phone": "+14155550177"}'}  # fmt: skip
        pipe.xadd(stream, fields)  # type: ignore[arg-type]
    pipe.execute()
    # The same event published twice more is not counted again.
    publish(redis_client, stream, f"{subject}-0", "shipment.delayed", data, subject=subject)
    processes.wait_until(lambda: count(database_url, "event_subject = $1", subject) == 3,
                         message="three rows")  # fmt: skip
    expected = [("sent", None), ("skipped", "throttled"), ("skipped", "throttled")]

    def outcomes() -> list[tuple[str, str | None]]:
        found = rows(database_url, "event_subject = $1", subject)
        return sorted((r["status"], r["error_code"]) for r in found)

    processes.wait_until(lambda: outcomes() == expected, message=lambda: f"{outcomes()}")
    assert len(sandbox.messages("sms")) == 1
