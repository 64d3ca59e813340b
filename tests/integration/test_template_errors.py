"""A rule whose template fails on an event, on a real consumer and worker: the event's other
rules still send, and the event is acknowledged (not redelivered, not dead-lettered)."""

from __future__ import annotations

import pytest
import redis

from sandbox import Sandbox
from tests.integration import processes
from tests.integration.helpers import publish, rows, shipment

pytestmark = pytest.mark.integration

RULES = """
rules:
  - name: device-push
    on: shipment.delayed
    channel: push
    to: "{{ data.device }}"
    body: "Shipment {{ data.shipment_id }} delayed"
  - name: delay-sms
    on: shipment.delayed
    channel: sms
    to: "{{ data.customer.phone }}"
    body: "Shipment {{ data.shipment_id }} is late."
"""


def test_an_undefined_recipient_fails_one_rule_and_the_other_still_sends(
    start_pipeline: processes.StartPipeline,
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    # Fast reclaims and few deliveries: had the event failed routing, it would be
    # redelivered and dead-lettered within the test, not minutes later.
    pipeline = start_pipeline(RULES, NOTIFY_CLAIM_IDLE_SECONDS="1", NOTIFY_MAX_DELIVERIES="2")
    stream = pipeline.env["NOTIFY_STREAM"]
    event_id = f"undef-{stream}"
    publish(redis_client, stream, event_id, "shipment.delayed", shipment(5, tokens=0))
    [sms] = sandbox.wait_for(1, timeout=30)
    assert (sms.to, sms.body) == ("+14155550005", "Shipment SHP-5 is late.")

    def statuses() -> list[tuple[str, str, str | None]]:
        found = rows(database_url, "event_id = $1", event_id)
        return sorted((r["rule"], r["status"], r["error_code"]) for r in found)

    processes.wait_until(
        lambda: (
            statuses() == [("delay-sms", "sent", None), ("device-push", "failed", "template_error")]
        ),
        message=lambda: f"the SMS sent and the push failed; rows now {statuses()}",
    )
    [push] = rows(database_url, "event_id = $1 AND rule = 'device-push'", event_id)
    assert "device" in push["error_message"]
    processes.wait_until(
        lambda: redis_client.xinfo_groups(stream)[0]["pending"] == 0, message="event acked"
    )
    # A later event goes through too, and the first one was never routed twice.
    publish(redis_client, stream, f"{event_id}-2", "shipment.delayed", shipment(6, tokens=0))
    sandbox.wait_for(2, timeout=30)
    assert redis_client.xlen(f"{stream}.dlq") == 0
    assert redis_client.xinfo_groups(stream)[0]["entries-read"] == 2
    assert "routing failed" not in pipeline.consumer.log()
    assert [m.to for m in sandbox.messages()] == ["+14155550005", "+14155550006"]
