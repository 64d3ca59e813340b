"""A lost answer looked up in a Messages list that lags and a body Twilio rewrote: found
once the documented wait has passed, never sent twice."""

from __future__ import annotations

import pytest
import redis

from sandbox import Sandbox
from tests.integration import processes
from tests.integration.helpers import attempts, publish, shipment, wait_for_rows

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# Curly quotes and a dash: Smart Encoding stores them as ' " -.
CURLY = """
rules:
  - name: delay-sms
    on: shipment.delayed
    channel: sms
    to: "{{ data.customer.phone }}"
    body: "It\u2019s \u201clate\u201d \u2013 shipment {{ data.shipment_id }}."
"""


def test_a_lagging_list_and_a_smart_encoded_body_cause_no_second_sms(
    start_pipeline: processes.StartPipeline,
    sandbox: Sandbox,
    redis_client: redis.Redis,
    database_url: str,
) -> None:
    # The list hides messages for 3 s; lookups wait 5 s (production: 300 s against minutes).
    sandbox.set_sms_list(lag_s=3)
    sandbox.set_smart_encoding(True)
    sandbox.queue_errors("sms", [{"action": "drop"}])  # accepted, answer lost
    pipe = start_pipeline(CURLY, NOTIFY_PROVIDER_TIMEOUT_SECONDS="1",
                          NOTIFY_RECONCILE_WAIT_SECONDS="5")  # fmt: skip
    stream = pipe.env["NOTIFY_STREAM"]
    publish(redis_client, stream, f"lag-{stream}", "shipment.delayed", shipment(81, tokens=0))
    [row] = wait_for_rows(database_url, f"lag-{stream}", 1, timeout=60)

    [message] = sandbox.messages("sms")  # one SMS reached the phone
    assert message.body == 'It\'s "late" - shipment SHP-81.'  # what Twilio stored
    assert (row["status"], row["provider_message_id"]) == ("sent", message.id)
    outcomes = [a["outcome"] for a in attempts(database_url, int(str(row["id"])))]
    assert outcomes[0] == "transient_error" and outcomes[-1] == "reconciled"
    assert "sent" not in outcomes
