"""Receipts that carry Twilio's reasons: an opt-out reported late (21610, Messaging
Services) suppresses the number; a queue that overflowed or a message that expired (30001,
30036) fails the row long after `queued`, and suppresses nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from sandbox import Sandbox
from tests.integration import processes
from tests.integration.helpers import SMS_ONLY, fetch, publish, rows, shipment
from tests.integration.twilio_callbacks import PUBLIC_URL, TwilioCallbacks

pytestmark = pytest.mark.integration

SERVICE = "MG" + "5" * 32


def relay_final(sandbox: Sandbox, twilio: TwilioCallbacks, sid: str) -> str:
    """The emulator's final status for `sid`, posted to the app as Twilio would sign it."""
    message = sandbox.wait_for_status(sid, "failed", timeout=30)
    code = str(message.response["error_code"])
    assert twilio.status(sid, "failed", code).status_code == 200
    return code


def sent_sid(database_url: str, event_id: str) -> str:
    processes.wait_until(
        lambda: bool(rows(database_url, "event_id = $1 AND status = 'sent'", event_id)),
        message=f"{event_id} sent",
    )
    [row] = rows(database_url, "event_id = $1", event_id)
    return str(row["provider_message_id"])


def test_an_opt_out_in_a_receipt_suppresses_in_the_same_transaction(
    start_pipeline: processes.StartPipeline,
    start_webhooks: Callable[..., TwilioCallbacks],
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    env = start_pipeline(
        SMS_ONLY, NOTIFY_PUBLIC_URL=PUBLIC_URL, TWILIO_MESSAGING_SERVICE_SID=SERVICE
    ).env
    twilio = start_webhooks(TWILIO_MESSAGING_SERVICE_SID=SERVICE)
    stream, number = env["NOTIFY_STREAM"], "+14155550061"
    sandbox.opt_out(number)  # a STOP to the service Twilio handled; we never saw it
    publish(redis_client, stream, f"o1-{stream}", "shipment.delayed", shipment(61), "SHP-61")
    sid = sent_sid(database_url, f"o1-{stream}")  # the service accepted it
    assert relay_final(sandbox, twilio, sid) == "21610"
    [row] = rows(database_url, "event_id = $1", f"o1-{stream}")
    assert (row["status"], row["error_code"]) == ("failed", "21610")
    [entry] = fetch(database_url, "SELECT * FROM suppressions WHERE recipient = $1", number)
    assert (entry["channel"], entry["reason"]) == ("sms", "21610")

    publish(redis_client, stream, f"o2-{stream}", "shipment.delayed", shipment(61), "SHP-61")
    processes.wait_until(
        lambda: bool(rows(database_url, "event_id = $1 AND status = 'skipped'", f"o2-{stream}")),
        message="the next SMS to the number skipped",
    )
    assert [m.to for m in sandbox.messages("sms")] == [number]


def test_queue_overflow_and_expiry_fail_late_and_suppress_nothing(
    start_pipeline: processes.StartPipeline,
    start_webhooks: Callable[..., TwilioCallbacks],
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    # The sender drains nothing; its queue gives up after 2 s (Twilio: four hours).
    env = start_pipeline(SMS_ONLY, NOTIFY_PUBLIC_URL=PUBLIC_URL,
                         NOTIFY_SMS_SEGMENTS_PER_SECOND="5").env  # fmt: skip
    twilio = start_webhooks()
    sandbox.set_sms_rate(0)
    sandbox.set_max_queue(2)
    stream = env["NOTIFY_STREAM"]
    publish(redis_client, stream, f"q1-{stream}", "shipment.delayed", shipment(71), "SHP-71")
    sid = sent_sid(database_url, f"q1-{stream}")
    assert sandbox.messages("sms")[0].status == "queued"
    assert relay_final(sandbox, twilio, sid) == "30001"
    [row] = rows(database_url, "event_id = $1", f"q1-{stream}")
    assert (row["status"], row["error_code"]) == ("failed", "30001")
    assert fetch(database_url, "SELECT * FROM suppressions") == []
