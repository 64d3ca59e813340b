"""Answers lost on the way back from Twilio: each SMS is sent once, and every row says so.

Twilio accepts a message, the connection drops before the answer arrives, and the message
sits `queued` at Twilio (a sender over its throughput limit), so it has no `date_sent` yet.
The retry must find it anyway, and must not send it again.
"""

from __future__ import annotations

import socket
from collections import Counter

import pytest
import redis

from sandbox import Sandbox
from tests.integration import processes
from tests.integration.helpers import (
    SMS_ONLY,
    attempts,
    publish,
    publish_events,
    shipment,
    wait_for_rows,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]


def test_lost_answers_while_twilio_queues_send_each_sms_once(
    start_pipeline: processes.StartPipeline,
    sandbox: Sandbox,
    redis_client: redis.Redis,
    database_url: str,
) -> None:
    pipe = start_pipeline(SMS_ONLY, NOTIFY_PROVIDER_TIMEOUT_SECONDS="1")
    # Twilio holds every message `queued` (no date_sent) for the whole test: far longer
    # than the retry delay (one provider timeout, 1 s here).
    sandbox.set_sms_rate(0)
    total = 5
    # Each first attempt is accepted, then the connection drops before the answer.
    sandbox.queue_errors("sms", [{"action": "drop"}] * total)
    stream = pipe.env["NOTIFY_STREAM"]
    prefix = f"lost-{stream}"
    publish_events(redis_client, stream, prefix, (shipment(n, tokens=0) for n in range(total)))

    found = wait_for_rows(database_url, f"{prefix}-%", total, timeout=90)

    messages = sandbox.messages("sms")
    assert Counter(m.to for m in messages) == Counter(f"+1415555{n:04d}" for n in range(total))
    assert {m.status for m in messages} == {"queued"}  # still held at Twilio throughout
    sid_of = {m.to: m.id for m in messages}
    assert [(r["status"], r["provider_message_id"]) for r in found] == [
        ("sent", sid_of[str(r["recipient"])]) for r in found
    ]
    for row in found:
        outcomes = [a["outcome"] for a in attempts(database_url, int(str(row["id"])))]
        assert outcomes == ["transient_error", "reconciled"]
    assert sandbox.release() == total  # Twilio sends each one, once


def listening(sandbox: Sandbox) -> bool:
    try:
        socket.create_connection(("127.0.0.1", sandbox.port), timeout=0.5).close()
    except OSError:
        return False
    return True


def lose_the_answer_then_refuse(sandbox: Sandbox, seconds: float) -> None:
    """Twilio takes the first send, its answer is lost, then Twilio is unreachable a while."""
    processes.wait_until(lambda: sandbox.messages("sms"), interval=0.01, message="the send")
    sandbox.refuse_connections(seconds)


def test_lookups_that_fail_neither_send_nor_use_up_the_attempts(
    start_pipeline: processes.StartPipeline,
    sandbox: Sandbox,
    redis_client: redis.Redis,
    database_url: str,
) -> None:
    # Two sends allowed; the lookups fail for longer than two attempts' worth of retries.
    pipe = start_pipeline(
        SMS_ONLY, NOTIFY_PROVIDER_TIMEOUT_SECONDS="2", NOTIFY_MAX_SEND_ATTEMPTS="2"
    )
    sandbox.set_sms_rate(0)
    sandbox.queue_errors("sms", [{"action": "drop"}])
    stream = pipe.env["NOTIFY_STREAM"]
    publish(redis_client, stream, f"refused-{stream}", "shipment.delayed", shipment(1, tokens=0))
    lose_the_answer_then_refuse(sandbox, 4)

    [found] = wait_for_rows(database_url, f"refused-{stream}", 1, timeout=90)

    [message] = sandbox.messages("sms")
    assert (found["status"], found["provider_message_id"]) == ("sent", message.id)
    outcomes = [a["outcome"] for a in attempts(database_url, int(str(found["id"])))]
    assert outcomes[0] == "transient_error" and outcomes[-1] == "reconciled"
    assert set(outcomes[1:-1]) == {"lookup_failed"} and len(outcomes) > 3
    assert found["lookup_failures"] == len(outcomes) - 2
    processes.wait_until(lambda: listening(sandbox), message="the emulator listening again")


def test_lookups_failing_past_their_budget_end_as_outcome_unknown_not_a_resend(
    start_pipeline: processes.StartPipeline,
    sandbox: Sandbox,
    redis_client: redis.Redis,
    database_url: str,
) -> None:
    pipe = start_pipeline(
        SMS_ONLY, NOTIFY_PROVIDER_TIMEOUT_SECONDS="1", NOTIFY_MAX_SEND_ATTEMPTS="2",
        NOTIFY_RECONCILE_BUDGET_SECONDS="2",
    )  # fmt: skip
    sandbox.set_sms_rate(0)
    sandbox.queue_errors("sms", [{"action": "drop"}])
    stream = pipe.env["NOTIFY_STREAM"]
    publish(redis_client, stream, f"unknown-{stream}", "shipment.delayed", shipment(2, tokens=0))
    lose_the_answer_then_refuse(sandbox, 5)

    [found] = wait_for_rows(database_url, f"unknown-{stream}", 1, timeout=90)

    assert (found["status"], found["error_code"]) == ("failed", "outcome_unknown")
    assert found["attempts"] > 2  # more lookups than the two sends allowed
    processes.wait_until(lambda: listening(sandbox), message="the emulator listening again")
    assert len(sandbox.messages("sms")) == 1  # never sent blind
