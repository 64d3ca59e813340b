"""Provider error storms against the real SDKs: retried when transient, stopped when not."""

from __future__ import annotations

import dataclasses
import socket
from collections import Counter
from itertools import pairwise

import pytest
import redis

from notify.settings import Settings
from sandbox import Sandbox
from schemas import AmbiguousDeliveryError, RefusedDeliveryError, TransientDeliveryError
from tasks.providers.twilio_sms import TwilioSms
from tests.integration import processes
from tests.integration.helpers import (
    attempts,
    publish,
    publish_events,
    push_token,
    rows,
    shipment,
    wait_for_rows,
)

pytestmark = pytest.mark.integration


def test_429_then_success_is_retried_with_the_providers_delay(
    running: dict[str, str], redis_client: redis.Redis, sandbox: Sandbox, database_url: str
) -> None:
    sandbox.queue_errors("sms", [{"status": 429, "code": 20429, "retry_after": 1}] * 2)
    stream = running["NOTIFY_STREAM"]
    publish(redis_client, stream, f"r429-{stream}", "shipment.delayed", shipment(1, tokens=0))
    wait_for_rows(database_url, f"r429-{stream}", 1)
    [row] = rows(database_url, "event_id = $1", f"r429-{stream}")
    assert (row["status"], row["attempts"]) == ("sent", 3)
    tries = attempts(database_url, row["id"])
    assert [(a["outcome"], a["error_code"]) for a in tries] == [
        ("transient_error", "20429"),
        ("transient_error", "20429"),
        ("sent", None),
    ]
    # Retry-After (1 s) is a floor on the wait between attempts.
    gaps = [(b["started_at"] - a["finished_at"]).total_seconds() for a, b in pairwise(tries)]
    assert all(g >= 0.95 for g in gaps)
    assert [m.to for m in sandbox.messages("sms")] == ["+14155550001"]


def test_a_burst_of_503s_is_ridden_out_and_nothing_is_duplicated(
    running: dict[str, str], redis_client: redis.Redis, sandbox: Sandbox, database_url: str
) -> None:
    sandbox.storm("push", 6, {"status": 503, "fcm_status": "UNAVAILABLE"})
    sandbox.storm("sms", 6, {"status": 503})
    stream = running["NOTIFY_STREAM"]
    publish_events(redis_client, stream, f"s503-{stream}", map(shipment, range(1, 6)), first=1)
    wait_for_rows(database_url, f"s503-{stream}-%", 10, timeout=60)
    assert Counter(m.to for m in sandbox.messages("sms")) == Counter(
        f"+1415555{n:04d}" for n in range(1, 6)
    )
    assert Counter(m.to for m in sandbox.messages("push")) == Counter(
        push_token(n) for n in range(1, 6)
    )
    found = rows(database_url, "event_id LIKE $1", f"s503-{stream}%")
    assert all(r["status"] == "sent" for r in found)
    assert sum(r["attempts"] for r in found) == 10 + 12  # every failed call was one attempt


def test_permanent_errors_fail_at_once_with_the_providers_code(
    running: dict[str, str], redis_client: redis.Redis, sandbox: Sandbox, database_url: str
) -> None:
    sandbox.fail_recipient("+14155550021", {"status": 400, "code": 21610})
    sandbox.fail_recipient(push_token(21), {"error_code": "UNREGISTERED"})
    sandbox.fail_recipient(push_token(22), {"error_code": "INVALID_ARGUMENT"})
    stream = running["NOTIFY_STREAM"]
    publish(redis_client, stream, f"perm-{stream}-1", "shipment.delayed", shipment(21))
    publish(redis_client, stream, f"perm-{stream}-2", "shipment.delayed", shipment(22, tokens=1))
    wait_for_rows(database_url, f"perm-{stream}-%", 4)
    found = {
        (r["channel"], r["recipient"]): r
        for r in rows(database_url, "event_id LIKE $1", f"perm-{stream}%")
    }
    sms = found[("sms", "+14155550021")]
    assert (sms["status"], sms["error_code"], sms["attempts"]) == ("failed", "21610", 1)
    push = found[("push", push_token(21))]
    assert (push["status"], push["error_code"], push["attempts"]) == ("failed", "UNREGISTERED", 1)
    bad = found[("push", push_token(22))]
    assert (bad["status"], bad["error_code"], bad["attempts"]) == ("failed", "INVALID_ARGUMENT", 1)
    assert found[("sms", "+14155550022")]["status"] == "sent"


def test_transient_errors_stop_after_the_maximum_attempts(
    running: dict[str, str], redis_client: redis.Redis, sandbox: Sandbox, database_url: str
) -> None:
    sandbox.fail_recipient("+14155550031", {"status": 503})
    stream = running["NOTIFY_STREAM"]
    publish(redis_client, stream, f"max-{stream}", "shipment.delayed", shipment(31, tokens=0))
    wait_for_rows(database_url, f"max-{stream}", 1, timeout=60)
    [row] = rows(database_url, "event_id = $1", f"max-{stream}")
    assert (row["status"], row["error_code"], row["attempts"]) == ("failed", "20503", 4)
    assert len(attempts(database_url, row["id"])) == 4
    assert sandbox.messages("sms") == []


def test_invalid_numbers_never_reach_the_provider(
    running: dict[str, str], redis_client: redis.Redis, sandbox: Sandbox, database_url: str
) -> None:
    stream = running["NOTIFY_STREAM"]
    data = shipment(41, tokens=0)
    data["customer"]["phone"] = "12345"  # type: ignore[index]
    publish(redis_client, stream, f"inv-{stream}", "shipment.delayed", data)
    wait_for_rows(database_url, f"inv-{stream}", 1)
    [row] = rows(database_url, "event_id = $1", f"inv-{stream}")
    assert (row["status"], row["error_code"], row["attempts"]) == ("failed", "invalid_recipient", 0)
    assert sandbox.requests("sms") == []


def test_a_slow_provider_times_out_and_a_dead_one_is_unreachable(sandbox: Sandbox) -> None:
    """Network failures through the real SDK and transport: both transient, told apart by
    whether the request can have reached Twilio (only then is a lookup needed)."""
    settings = Settings(
        twilio_account_sid="AC" + "1" * 32, twilio_auth_token="any",
        twilio_phone_number="+15005550006", twilio_api_url=sandbox.url,
        provider_timeout_seconds=0.3,
    )  # fmt: skip
    sandbox.reset()
    sandbox.set_latency(1500, "sms")
    try:
        with pytest.raises(TransientDeliveryError) as slow:
            TwilioSms(settings).send("+14155550100", "hello")
    finally:
        sandbox.set_latency(0, "sms")
    assert (type(slow.value), slow.value.code) == (AmbiguousDeliveryError, "timeout")
    # The emulator, like Twilio, still accepts the message after the client gave up.
    sandbox.wait_for(1, timeout=10)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: refused
        dead = dataclasses.replace(settings, twilio_api_url=closed)
        with pytest.raises(TransientDeliveryError) as refused:
            TwilioSms(dead).send("+14155550100", "hello")
    # A refusal another provider may take (CONTRACT section 13): it never left.
    assert (type(refused.value), refused.value.code) == (RefusedDeliveryError, "unreachable")
    assert "+1415" not in refused.value.message + slow.value.message


def test_a_timed_out_sms_that_twilio_accepted_is_reconciled_not_sent_twice(
    start_pipeline: processes.StartPipeline,
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    sandbox.set_latency(1000, "sms")
    # The retry comes after the emulator has accepted the message (latency 1 s).
    env = start_pipeline(
        NOTIFY_PROVIDER_TIMEOUT_SECONDS="0.3",
        NOTIFY_RETRY_BASE_SECONDS="3",
        NOTIFY_RETRY_MAX_SECONDS="3",
    ).env
    stream = env["NOTIFY_STREAM"]
    publish(redis_client, stream, f"tmo-{stream}", "shipment.delayed", shipment(51, tokens=0))
    wait_for_rows(database_url, f"tmo-{stream}", 1, timeout=60)
    [row] = rows(database_url, "event_id = $1", f"tmo-{stream}")
    [message] = sandbox.messages("sms")
    assert (row["status"], row["provider_message_id"]) == ("sent", message.id)
    tries = attempts(database_url, row["id"])
    assert [(a["outcome"], a["error_code"]) for a in tries] == [
        ("transient_error", "timeout"),
        ("reconciled", None),
    ]
