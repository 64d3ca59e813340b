"""FCM and Google's token endpoint misbehaving, against firebase-admin as production runs it."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
import redis
from firebase_admin import messaging

from harness.launcher import wait_until
from notify.settings import Settings
from sandbox import Sandbox
from schemas import (
    AmbiguousDeliveryError,
    ConfigurationError,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from tasks.providers import fcm_http
from tasks.providers.fcm_push import FCM_BASE, FcmPush
from tests.integration import processes
from tests.integration.helpers import attempts, publish, push_token, rows, wait_for_rows

pytestmark = pytest.mark.integration

PUSH_ONLY = """\
rules:
  - name: push
    on: shipment.delayed
    channel: push
    to: "{{ data.tokens }}"
    title: "Shipment delayed"
    body: "Shipment {{ data.id }} delayed"
"""


@pytest.fixture
def push(sandbox: Sandbox, service_account: Path) -> Iterator[FcmPush]:
    """A fresh FcmPush (its own app, so its own first token request) on the emulator."""
    sandbox.reset()
    settings = Settings(google_credentials=str(service_account), fcm_api_url=sandbox.url,
                        provider_timeout_seconds=1.0)  # fmt: skip
    fcm = FcmPush(settings)
    yield fcm
    fcm.close()


def session_adapter(fcm: FcmPush, url: str) -> object:
    service = messaging._get_messaging_service(fcm.app())
    return service._client.session.get_adapter(url)


def test_tests_mount_the_adapter_production_mounts(sandbox: Sandbox, service_account: Path) -> None:
    mounted = []
    for url in (FCM_BASE, sandbox.url):
        fcm = FcmPush(Settings(google_credentials=str(service_account), fcm_api_url=url))
        try:
            adapter = session_adapter(fcm, url)
        finally:
            fcm.close()
        mounted.append(type(adapter).__name__)
        assert adapter.max_retries is fcm_http.RETRIES
    assert mounted[0] == mounted[1]


def test_a_read_timeout_is_not_resent_and_is_ambiguous(push: FcmPush, sandbox: Sandbox) -> None:
    sandbox.queue_errors("push", [{"action": "timeout", "delay_s": 3}])
    with pytest.raises(AmbiguousDeliveryError) as caught:
        push.send(push_token(1), "t", "b", None, collapse_id="notify-1")
    assert caught.value.code == "timeout"
    wait_until(lambda: len(sandbox.messages("push")) >= 1, timeout=10)
    posts = [r for r in sandbox.requests("push") if r.method == "POST"]
    assert len(posts) == 1  # the SDK layer did not resend it
    assert len(sandbox.messages("push")) == 1


def test_a_503_reaches_our_backoff_instead_of_being_absorbed(
    push: FcmPush, sandbox: Sandbox
) -> None:
    sandbox.queue_errors("push", [{"status": 503}])
    with pytest.raises(TransientDeliveryError) as caught:
        push.send(push_token(2), "t", "b", None)
    assert caught.value.code == "UNAVAILABLE"
    assert len([r for r in sandbox.requests("push") if r.method == "POST"]) == 1


def test_a_bad_key_or_invalid_grant_stays_a_configuration_error(
    push: FcmPush, sandbox: Sandbox
) -> None:
    sandbox.fail_token_requests([{"status": 400, "error_code": "invalid_grant"}])
    with pytest.raises(ConfigurationError) as caught:
        push.send(push_token(3), "t", "b", None)
    assert caught.value.code == "auth_error"
    assert sandbox.messages("push") == []


def test_a_token_endpoint_outage_is_transient(push: FcmPush, sandbox: Sandbox) -> None:
    # google-auth asks three times per refresh on a 503; a 502 page it does not retry.
    sandbox.fail_token_requests([{"status": 503}] * 3 + [{"status": 502}])
    for _ in range(2):
        with pytest.raises(TransientDeliveryError) as caught:
            push.send(push_token(4), "t", "b", None)
        assert not isinstance(caught.value, AmbiguousDeliveryError)
        assert caught.value.code == "auth_unavailable"
    assert push.send(push_token(4), "t", "b", None).startswith("projects/")


def test_fcm_refusals_of_the_payload_are_permanent_and_suppress_nothing(
    push: FcmPush, sandbox: Sandbox
) -> None:
    for data in ({"from": "us"}, {"blob": "x" * 4096}):
        with pytest.raises(PermanentDeliveryError) as caught:
            push.send(push_token(5), "t", "b", data)
        assert caught.value.code == "INVALID_ARGUMENT"
        assert "registration token" not in caught.value.message
    assert sandbox.messages("push") == []


def test_a_google_outage_and_fcm_quota_answers_are_ridden_out_with_backoff(
    start_pipeline: processes.StartPipeline,
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    # The worker's first token request meets an outage (3 x 503: google-auth's own tries),
    # then FCM answers 429 QUOTA_EXCEEDED twice without Retry-After.
    sandbox.fail_token_requests([{"status": 503}] * 3)
    sandbox.queue_errors("push", [{"error_code": "QUOTA_EXCEEDED"}] * 2)
    stream = start_pipeline(PUSH_ONLY, NOTIFY_QUOTA_RETRY_BASE_SECONDS="1").env["NOTIFY_STREAM"]
    event = f"quota-{stream}"
    publish(redis_client, stream, event, "shipment.delayed",
            {"id": "SHP-9", "tokens": [push_token(9)]})  # fmt: skip
    wait_for_rows(database_url, event, 1, timeout=60)
    [row] = rows(database_url, "event_id = $1", event)
    assert row["status"] == "sent"
    tries = attempts(database_url, row["id"])
    assert [(a["outcome"], a["error_code"]) for a in tries] == [
        ("transient_error", "auth_unavailable"),
        ("transient_error", "QUOTA_EXCEEDED"),
        ("transient_error", "QUOTA_EXCEEDED"),
        ("sent", None),
    ]
    gaps = [(b["started_at"] - a["finished_at"]).total_seconds() for a, b in pairwise(tries)]
    # Quota waits are base x 2^(attempt - 1) at least (base 1 s here, 60 s in production).
    assert gaps[1] >= 1.9 and gaps[2] >= 3.8
    assert [m.to for m in sandbox.messages("push")] == [push_token(9)]
