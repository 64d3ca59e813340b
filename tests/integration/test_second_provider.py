"""A second SMS provider, end to end: real twilio and vonage SDKs in a real worker, against
the two emulators; Vonage's signed webhooks into a real `notify webhooks` (CONTRACT 13)."""

from __future__ import annotations

import json
import signal
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from harness.launcher import (
    VONAGE_APPLICATION_ID,
    VONAGE_SIGNATURE_SECRET,
    free_port,
    vonage_env,
    write_private_key,
)
from notify.webhook_paths import VONAGE_INBOUND_PATH, VONAGE_STATUS_PATH
from sandbox import Sandbox
from sandbox.vonage import VonageSandbox
from tasks.weights import KEY
from tests.integration import processes
from tests.integration.helpers import count, fetch, publish, shipment, wait_for_rows
from tests.integration.twilio_callbacks import TwilioCallbacks

pytestmark = pytest.mark.integration

TWO = {"NOTIFY_SMS_PROVIDERS": "twilio,vonage"}
SMS_ONLY = """
rules:
  - name: delay-sms
    on: shipment.delayed
    channel: sms
    to: "{{ data.customer.phone }}"
    body: "Shipment {{ data.shipment_id }} is late."
"""


@pytest.fixture(scope="module")
def vonage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VonageSandbox]:
    key = tmp_path_factory.mktemp("vonage") / "private.key"
    public = write_private_key(key)
    with VonageSandbox(
        public_key=public, application_id=VONAGE_APPLICATION_ID,
        signature_secret=VONAGE_SIGNATURE_SECRET,
    ) as v:  # fmt: skip
        v.key_path = key  # type: ignore[attr-defined]
        yield v


@pytest.fixture
def two_providers(
    vonage: VonageSandbox, pipeline_env: dict[str, str], sandbox: Sandbox
) -> dict[str, str]:
    vonage.reset()
    vonage.set_proxy(None)
    vonage.set_status_url(None)
    pipeline_env.update(vonage_env(vonage.url, vonage.key_path, **TWO))  # type: ignore[attr-defined]
    return pipeline_env


def send(env: dict[str, str], client: redis.Redis, n: int, tag: str) -> str:
    event = f"{tag}-{uuid.uuid4().hex[:8]}"
    publish(client, env["NOTIFY_STREAM"], event, "shipment.delayed", shipment(n))
    return event


def at_twilio(sandbox: Sandbox, to: str) -> int:
    return sum(1 for m in sandbox.messages("sms") if m.to == to)


def at_vonage(vonage: VonageSandbox, to: str) -> int:
    return sum(1 for m in vonage.messages() if m.to == to.removeprefix("+"))


@pytest.mark.parametrize(
    "fault", ["refused", {"code": 20503}], ids=["connection-refused", "503-before-acceptance"]
)
def test_a_twilio_refusal_sends_the_sms_once_at_vonage(
    two_providers: dict[str, str],
    start_pipeline: processes.StartPipeline,
    sandbox: Sandbox,
    vonage: VonageSandbox,
    redis_client: redis.Redis,
    fault: Any,
) -> None:
    env = start_pipeline(SMS_ONLY).env
    if fault == "refused":
        sandbox.refuse_connections(5)
    else:
        sandbox.queue_errors("sms", [fault])
    event = send(env, redis_client, 1, "refused")
    [row] = wait_for_rows(env["DATABASE_URL"], event, 1)
    assert row["status"] == "sent" and row["provider"] == "vonage"
    assert at_vonage(vonage, "+14155550001") == 1 and at_twilio(sandbox, "+14155550001") == 0
    tried = fetch(env["DATABASE_URL"],
                  "SELECT provider, outcome FROM notification_attempts WHERE notification_id = $1"
                  " ORDER BY attempt", row["id"])  # fmt: skip
    assert [(a["provider"], a["outcome"]) for a in tried] == [
        ("twilio", "transient_error"),
        ("vonage", "sent"),
    ]


@pytest.mark.parametrize("list_lag", [0, 3], ids=["listed-at-once", "list-lags-3s"])
def test_a_read_timeout_after_acceptance_stays_at_twilio(
    two_providers: dict[str, str],
    start_pipeline: processes.StartPipeline,
    sandbox: Sandbox,
    vonage: VonageSandbox,
    redis_client: redis.Redis,
    list_lag: float,
) -> None:
    # A list that hides new messages must not pass for "not there": the lookup waits
    # NOTIFY_RECONCILE_WAIT_SECONDS before it believes an empty answer (faults issue).
    sandbox.set_sms_list(lag_s=list_lag)
    env = start_pipeline(
        SMS_ONLY, NOTIFY_PROVIDER_TIMEOUT_SECONDS="1", NOTIFY_RECONCILE_WAIT_SECONDS="5"
    ).env
    sandbox.queue_errors("sms", [{"action": "timeout", "delay_s": 3}])
    event = send(env, redis_client, 2, "timeout")
    [row] = wait_for_rows(env["DATABASE_URL"], event, 1)
    assert row["status"] == "sent" and row["provider"] == "twilio"
    assert at_twilio(sandbox, "+14155550002") == 1 and at_vonage(vonage, "+14155550002") == 0


def test_a_lookup_that_finds_nothing_sends_it_once_at_vonage(
    two_providers: dict[str, str],
    start_pipeline: processes.StartPipeline,
    sandbox: Sandbox,
    vonage: VonageSandbox,
    redis_client: redis.Redis,
) -> None:
    env = start_pipeline(SMS_ONLY).env
    sandbox.queue_errors("sms", [{"action": "reset"}])  # the answer is lost; nothing was made
    event = send(env, redis_client, 3, "lookup")
    [row] = wait_for_rows(env["DATABASE_URL"], event, 1)
    assert row["status"] == "sent" and row["provider"] == "vonage"
    assert at_vonage(vonage, "+14155550003") == 1 and at_twilio(sandbox, "+14155550003") == 0
    lookups = [r for r in sandbox.requests("sms") if r.method == "GET"]
    assert lookups, "Twilio was asked before the row moved"


@pytest.fixture
def vonage_webhooks(
    two_providers: dict[str, str], start_webhooks: Callable[..., TwilioCallbacks]
) -> str:
    """A `notify webhooks` whose public URL is where it listens, so both emulators' status
    callbacks (Twilio's StatusCallback, Vonage's webhook_url) reach it; returns that URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    start_webhooks("webhooks-vonage", NOTIFY_WEBHOOK_PORT=str(port), NOTIFY_PUBLIC_URL=url)
    two_providers["NOTIFY_PUBLIC_URL"] = url
    return url


def test_a_bad_or_tampered_vonage_callback_is_403_and_changes_nothing(
    vonage_webhooks: str,
    start_pipeline: processes.StartPipeline,
    vonage: VonageSandbox,
    redis_client: redis.Redis,
) -> None:
    env = start_pipeline(SMS_ONLY, NOTIFY_SMS_PROVIDER_WEIGHTS="vonage=100").env
    vonage.set_delivery_delay(3600)  # only `submitted` comes by itself
    event = send(env, redis_client, 4, "forged")
    [row] = wait_for_rows(env["DATABASE_URL"], event, 1)
    url = vonage_webhooks + VONAGE_STATUS_PATH
    uuid_ = row["provider_message_id"]
    for signature in ("forged", "tampered", "missing"):
        answer = vonage.send_status(url, uuid_, "delivered", signature=signature)  # type: ignore[arg-type]
        assert answer.answer == 403, signature
    assert count(env["DATABASE_URL"], "provider_message_id = $1 AND status = 'sent'", uuid_) == 1
    receipts = fetch(
        env["DATABASE_URL"],
        "SELECT 1 FROM notification_receipts WHERE provider_message_id = $1"
        " AND provider_status = 'delivered'", uuid_,
    )  # fmt: skip
    assert receipts == []
    assert vonage.send_status(url, uuid_, "delivered").answer == 200
    wait_for_rows(env["DATABASE_URL"], event, 1, {"delivered"})


def test_duplicate_and_reversed_vonage_callbacks_settle_the_row_once(
    vonage_webhooks: str,
    start_pipeline: processes.StartPipeline,
    vonage: VonageSandbox,
    redis_client: redis.Redis,
) -> None:
    env = start_pipeline(SMS_ONLY, NOTIFY_SMS_PROVIDER_WEIGHTS="vonage=100").env
    vonage.set_callback_modes(duplicate=True, reverse=True)
    vonage.set_outcome("14155550005", "undeliverable", "1320")
    event = send(env, redis_client, 5, "dupes")
    [row] = wait_for_rows(env["DATABASE_URL"], event, 1, {"undelivered"})
    assert row["error_code"] == "1320"
    vonage.wait_for_webhooks(4, kind="status")
    uuid_ = row["provider_message_id"]
    seen = fetch(env["DATABASE_URL"],
                 "SELECT provider_status FROM notification_receipts WHERE provider_message_id = $1"
                 " ORDER BY id", uuid_)  # fmt: skip
    assert [r["provider_status"] for r in seen] == ["undeliverable"] * 2 + ["submitted"] * 2
    outcomes = redis_client.xrange(env["NOTIFY_OUTCOMES_STREAM"])
    mine = [f for _, f in outcomes if json.loads(f[b"data"])["notification_id"] == row["id"]]
    assert [f[b"type"] for f in mine] == [b"notification.sent", b"notification.undelivered"]
    assert {f[b"provider"] for f in mine} == {b"vonage"}


def test_stop_at_vonage_suppresses_twilio_sends_too(
    vonage_webhooks: str,
    start_pipeline: processes.StartPipeline,
    sandbox: Sandbox,
    vonage: VonageSandbox,
    redis_client: redis.Redis,
) -> None:
    env = start_pipeline(SMS_ONLY).env  # every SMS to Twilio
    url = vonage_webhooks + VONAGE_INBOUND_PATH
    assert vonage.send_inbound(url, "+14155550006", "+15005550007", " stop ").answer == 200
    event = send(env, redis_client, 6, "stopped")
    [row] = wait_for_rows(env["DATABASE_URL"], event, 1)
    assert (row["status"], row["error_code"]) == ("skipped", "suppressed")
    assert at_twilio(sandbox, "+14155550006") == 0
    [held] = fetch(
        env["DATABASE_URL"], "SELECT reason FROM suppressions WHERE recipient = '+14155550006'"
    )
    assert held["reason"] == "opt_out"


def weights(client: redis.Redis) -> dict[str, float]:
    raw = client.get(KEY)
    return {} if raw is None else dict(json.loads(raw)["points"])


def test_weights_shift_from_slow_receipts_and_come_back(
    vonage_webhooks: str,
    start_pipeline: processes.StartPipeline,
    procs: processes.Start,
    vonage: VonageSandbox,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    redis_client.delete(KEY)
    env = start_pipeline(
        SMS_ONLY, NOTIFY_SMS_PROVIDER_WEIGHTS="twilio=50,vonage=50",
        NOTIFY_SMS_HEALTH_INTERVAL_SECONDS="1", NOTIFY_SMS_SLOW_DELIVERY_SECONDS="2",
    ).env  # fmt: skip
    procs(processes.beat(env, tmp_path))
    vonage.set_delivery_delay(10)
    stream = env["NOTIFY_STREAM"]
    for n in range(40):
        publish(redis_client, stream, f"slow-{uuid.uuid4().hex[:6]}", "shipment.delayed",
                shipment(100 + n))  # fmt: skip
    processes.wait_until(
        lambda: weights(redis_client).get("vonage", 50) < 50, timeout=60,
        message=lambda: f"vonage's share to fall: {weights(redis_client)}",
    )  # fmt: skip
    vonage.set_delivery_delay(0)
    processes.wait_until(
        lambda: weights(redis_client).get("vonage") == 50, timeout=90,
        message=lambda: f"vonage's share to recover: {weights(redis_client)}",
    )  # fmt: skip
    redis_client.delete(KEY)


def test_a_worker_killed_mid_failover_loses_and_doubles_nothing(
    two_providers: dict[str, str],
    start_pipeline: processes.StartPipeline,
    procs: processes.Start,
    sandbox: Sandbox,
    vonage: VonageSandbox,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    pipeline = start_pipeline(
        SMS_ONLY, NOTIFY_SMS_PROVIDER_WEIGHTS="twilio=50,vonage=50", NOTIFY_STUCK_SECONDS="2",
        NOTIFY_MAX_SEND_ATTEMPTS="10",
    )  # fmt: skip
    env = pipeline.env
    procs(processes.beat(env, tmp_path))
    sandbox.set_latency(50)
    vonage.set_latency(50)
    sandbox.refuse_connections(6)  # Twilio down: its rows move to Vonage
    total = 60
    stream = env["NOTIFY_STREAM"]
    for n in range(total):
        publish(redis_client, stream, f"kill-{n}-{uuid.uuid4().hex[:6]}", "shipment.delayed",
                shipment(200 + n))  # fmt: skip
    processes.wait_until(lambda: len(vonage.messages()) >= 10, timeout=60,
                         message="failovers under way")  # fmt: skip
    pipeline.worker.stop(signal.SIGKILL)
    procs(processes.worker(env, tmp_path, "worker-2", concurrency=8, pool="threads"))
    rows = wait_for_rows(env["DATABASE_URL"], "kill-%", total, timeout=120)
    numbers = {f"+1415555{200 + n:04d}" for n in range(total)}
    received = Counter(m.to for m in sandbox.messages("sms") if m.to in numbers)
    received.update("+" + m.to for m in vonage.messages() if "+" + m.to in numbers)
    assert [n for n, c in received.items() if c > 1] == []  # never twice, anywhere
    # Every SMS arrived once, except at most those whose worker died inside a call to
    # Vonage, which has no lookup: those are `failed` / `outcome_unknown`, never resent
    # (docs/delivery-guarantees.md), and a Twilio row is never among them.
    unknown = {r["recipient"] for r in rows if r["error_code"] == "outcome_unknown"}
    assert numbers - set(received) <= unknown
    assert all(r["provider"] == "vonage" for r in rows if r["error_code"] == "outcome_unknown")
    assert all(r["status"] in ("sent", "delivered") for r in rows if r["recipient"] not in unknown)
