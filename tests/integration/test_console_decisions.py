"""The consumer keeps a why-not record of each event whose rows do not tell it all."""

from __future__ import annotations

import uuid

import pytest
import redis

from tests.integration import processes
from tests.integration.helpers import fetch, publish, shipment

pytestmark = pytest.mark.integration


def test_the_consumer_records_declined_and_unmatched_events(
    running: dict[str, str], redis_client: redis.Redis, database_url: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    stream = running["NOTIFY_STREAM"]
    publish(redis_client, stream, f"{tag}-small", "shipment.delayed", shipment(1, delay=5), "S-1")
    publish(redis_client, stream, f"{tag}-late", "shipment.delayed", shipment(2, delay=45))
    publish(redis_client, stream, f"{tag}-other", "shipment.unheard_of", shipment(3))
    found: list[dict[str, object]] = []

    def recorded() -> bool:
        found[:] = fetch(
            database_url,
            "SELECT * FROM event_decisions WHERE event_id LIKE $1 ORDER BY event_id",
            f"{tag}-%",
        )
        return len(found) == 2

    processes.wait_until(recorded, timeout=30, interval=0.2, message="two decision records")
    other, small = found
    assert small["event_id"] == f"{tag}-small" and small["event_subject"] == "S-1"
    assert small["matched"] == ["delay-sms", "delay-push"] and small["notified"] == ["delay-push"]
    assert other["event_id"] == f"{tag}-other" and other["matched"] == []
    # Every rule of the late shipment made a row: its rows tell it all, no record.
    late = fetch(database_url, "SELECT 1 FROM event_decisions WHERE event_id = $1", f"{tag}-late")
    assert late == []
