"""A realistic rule set for the consumer: an SMS, a push to a list of tokens, a reminder.

One event in ten is a `shipment.delivered` for a shipment delayed earlier in the stream, so
the reminder's `cancel_on` cancels rows as the backlog drains, as it would in production.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from sandbox.google.identifiers import registration_token

# rules.yaml's shipment.delayed rules, renamed, with t= in the SMS body: the bench times
# each send from it, so it cannot read the demo file itself.
RULES = """
rules:
  - name: mix-sms
    on: shipment.delayed
    when: data.delay_minutes >= 30
    channel: sms
    to: "{{ data.customer.phone }}"
    body: "Hi {{ data.customer.name }}, shipment {{ data.shipment_id }} is
      {{ data.delay_minutes | humanize_minutes }} late. t={{ data.sent_at }}"
  - name: mix-push
    on: shipment.delayed
    channel: push
    to: "{{ data.customer.push_tokens }}"
    title: "Shipment delayed"
    body: "Shipment {{ data.shipment_id }} is running {{ data.delay_minutes }} min late."
  - name: mix-reminder
    on: shipment.delayed
    channel: sms
    to: "{{ data.customer.phone }}"
    body: "Reminder: shipment {{ data.shipment_id }} arrives soon."
    delay: 10m
    cancel_on: [shipment.delivered, shipment.cancelled]
"""

# 1 or 2 devices per customer, alternately; a token is 163 characters, like real ones.
_TOKENS = [registration_token(f"mix-{n}") for n in range(200)]


def event_fields(n: int, tag: str) -> dict[str, str]:
    """Event `n`: every tenth delivers the shipment delayed five events before it."""
    if n % 10 == 9:
        shipment = f"SHP-{tag}-{n - 5}"
        return {"id": f"{tag}-{n}", "type": "shipment.delivered", "subject": shipment,
                "data": json.dumps({"shipment_id": shipment})}  # fmt: skip
    shipment = f"SHP-{tag}-{n}"
    data: dict[str, Any] = {
        "shipment_id": shipment,
        "delay_minutes": 45 + n % 60,
        "sent_at": 0.0,
        "customer": {
            "name": "Ann",
            "phone": f"+1415555{n % 10000:04d}",
            "push_tokens": _TOKENS[n % 199 : n % 199 + 1 + n % 2],
        },
    }
    return {"id": f"{tag}-{n}", "type": "shipment.delayed", "subject": shipment,
            "data": json.dumps(data)}  # fmt: skip


def load(client: redis.Redis, stream: str, count: int, tag: str) -> None:
    """Pipelined XADD, 5,000 per round trip."""
    pipe = client.pipeline(transaction=False)
    for n in range(count):
        pipe.xadd(stream, event_fields(n, tag))  # type: ignore[arg-type]
        if (n + 1) % 5000 == 0:
            pipe.execute()
    pipe.execute()
