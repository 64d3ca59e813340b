"""Delivery decisions with an in-package fake store and fake providers (no servers)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from prometheus_client import REGISTRY

from notify.settings import Settings
from schemas import (
    Channel,
    ConfigurationError,
    Notification,
    PermanentDeliveryError,
    Status,
    TransientDeliveryError,
)
from tasks.delivery import deliver, deliver_many
from tasks.runtime import Runtime
from tasks.schedule import settle
from tasks.testing import FakeStore


def row(
    nid: int, channel: Channel = Channel.SMS, attempts: int = 1, error_code: str | None = None
) -> Notification:
    return Notification(
        id=nid, idempotency_key=f"k{nid}", event_id="e", event_type="t", rule="r",
        channel=channel, recipient="+14155550100" if channel is Channel.SMS else "tok",
        body="hi", title=None, data=None, status=Status.SENDING, attempts=attempts,
        provider_message_id=None, error_code=error_code, send_at=None,
        updated_at=datetime(2026, 11, 25, tzinfo=UTC),
    )  # fmt: skip


class FakeProvider:
    def __init__(self, *outcomes: str | Exception) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0
        self.found: str | None = None

    def send(self, *args: Any) -> str:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def find_sent(self, to: str, body: str, since: datetime) -> str | None:
        return self.found


def runtime(store: FakeStore, sms: FakeProvider, push: FakeProvider | None = None) -> Runtime:
    settings = Settings(max_send_attempts=3, retry_base_seconds=1, retry_max_seconds=10)
    return Runtime(settings=settings, db=store, sms=sms, push=push or FakeProvider(),  # type: ignore[arg-type]
                   pid=0, senders=ThreadPoolExecutor(2))  # fmt: skip


def counter(channel: str, status: str) -> float:
    labels = {"channel": channel, "status": status}
    return REGISTRY.get_sample_value("notify_notifications_total", labels) or 0.0


def test_a_row_that_is_not_pending_is_skipped_without_a_provider_call() -> None:
    sms = FakeProvider()
    assert deliver(runtime(FakeStore({}), sms), 1, Channel.SMS).status == "skipped"
    assert sms.calls == 0


def test_success_records_sent_with_the_provider_id() -> None:
    store, before = FakeStore({1: row(1)}), counter("sms", "sent")
    assert deliver(runtime(store, FakeProvider("SM1")), 1, Channel.SMS).status == "sent"
    [done] = store.finished
    assert (done["status"], done["provider_message_id"]) == ("sent", "SM1")
    assert counter("sms", "sent") == before + 1


def test_recording_an_outcome_outlasts_a_postgres_blip_without_resending() -> None:
    store, sms = FakeStore({1: row(1)}), FakeProvider("SM1")
    store.record_failures = [ConnectionRefusedError("postgres restarting")] * 2
    assert deliver(runtime(store, sms), 1, Channel.SMS).status == "sent"
    assert sms.calls == 1 and [f["status"] for f in store.finished] == ["sent"]


@pytest.mark.parametrize("code", ["timeout", "connection_error", "reconcile_failed"])
def test_after_an_ambiguous_failure_an_accepted_sms_is_not_sent_again(code: str) -> None:
    store, sms = FakeStore({1: row(1, attempts=2, error_code=code)}), FakeProvider()
    sms.found = "SMearlier"
    assert deliver(runtime(store, sms), 1, Channel.SMS).status == "sent"
    [done] = store.finished
    assert sms.calls == 0
    assert (done["outcome"], done["provider_message_id"]) == ("reconciled", "SMearlier")


def test_after_an_ambiguous_failure_an_sms_twilio_never_got_is_sent() -> None:
    store, sms = FakeStore({1: row(1, attempts=2, error_code="timeout")}), FakeProvider("SM2")
    assert deliver(runtime(store, sms), 1, Channel.SMS).status == "sent"
    assert sms.calls == 1 and store.finished[0]["outcome"] == "sent"


def test_a_failed_lookup_retries_instead_of_sending_blind() -> None:
    store, sms = FakeStore({1: row(1, attempts=2, error_code="timeout")}), FakeProvider("SM2")
    sms.find_sent = lambda *a: (_ for _ in ()).throw(TimeoutError("slow"))  # type: ignore[method-assign]
    outcome = deliver(runtime(store, sms), 1, Channel.SMS)
    assert (outcome.status, outcome.code, sms.calls) == ("retried", "reconcile_failed", 0)
    assert store.finished[0]["status"] == "pending"


def test_a_first_attempt_or_a_definite_error_sends_without_looking() -> None:
    for first in (row(1, error_code=None), row(1, attempts=3, error_code="20429")):
        store, sms = FakeStore({1: first}), FakeProvider("SM3")
        sms.found = "SMwrong"
        assert deliver(runtime(store, sms), 1, Channel.SMS).status == "sent"
        assert sms.calls == 1 and store.finished[0]["provider_message_id"] == "SM3"


def test_an_ambiguous_failure_waits_at_least_one_provider_timeout() -> None:
    sms = FakeProvider(TransientDeliveryError("timeout", "read timed out"))
    outcome = deliver(runtime(FakeStore({1: row(1)}), sms), 1, Channel.SMS)
    assert outcome.retry_in is not None and outcome.retry_in >= Settings().provider_timeout_seconds


def test_a_permanent_error_fails_at_once() -> None:
    store = FakeStore({1: row(1)})
    sms = FakeProvider(PermanentDeliveryError("21211", "bad number"))
    outcome = deliver(runtime(store, sms), 1, Channel.SMS)
    assert (outcome.status, outcome.retry_in) == ("failed", None)
    assert (store.finished[0]["status"], store.finished[0]["error_code"]) == ("failed", "21211")


def test_a_transient_error_goes_back_to_pending_with_a_delay() -> None:
    store = FakeStore({1: row(1, attempts=1)})
    sms = FakeProvider(TransientDeliveryError("20429", "slow", retry_after=4))
    outcome = deliver(runtime(store, sms), 1, Channel.SMS)
    assert outcome.status == "retried" and outcome.retry_in is not None and outcome.retry_in >= 4
    assert store.finished[0]["status"] == "pending"


def test_the_last_allowed_attempt_fails_instead_of_retrying() -> None:
    store = FakeStore({1: row(1, attempts=3)})
    outcome = deliver(runtime(store, FakeProvider(TransientDeliveryError("20503", "x"))), 1,
                      Channel.SMS)  # fmt: skip
    assert (outcome.status, store.finished[0]["status"]) == ("failed", "failed")


def test_an_sdk_surprise_is_retried_as_internal_error() -> None:
    store = FakeStore({1: row(1)})
    outcome = deliver(runtime(store, FakeProvider(KeyError("x"))), 1, Channel.SMS)
    assert (outcome.status, outcome.code) == ("retried", "internal_error")


def test_a_configuration_error_is_logged_loudly(caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore({1: row(1)})
    caplog.set_level("ERROR", logger="notify")
    import logging

    logging.getLogger("notify").propagate = True  # let caplog see it
    try:
        deliver(runtime(store, FakeProvider(ConfigurationError("20003", "auth"))), 1, Channel.SMS)
    finally:
        logging.getLogger("notify").propagate = False
    assert any(r.levelname == "ERROR" and "configuration" in r.message for r in caplog.records)


def test_a_batch_claims_once_and_sends_each_claimed_row() -> None:
    store = FakeStore({1: row(1), 3: row(3)})
    results = deliver_many(runtime(store, FakeProvider("SM1", "SM3")), [1, 2, 3], Channel.SMS)
    assert [(nid, o.status) for nid, o in results] == [(1, "sent"), (3, "sent")]


def test_the_sweeper_settles_the_unrecorded_window() -> None:
    sms = FakeProvider()
    sms.found = "SM9"
    store = FakeStore({})
    assert settle(runtime(store, sms), row(9)) == "reconciled"
    assert store.resolved[-1]["provider_message_id"] == "SM9"
    push_row = msgspec.structs.replace(row(10), channel=Channel.PUSH)
    assert settle(runtime(store, sms), push_row) == "unknown"
    assert store.resolved[-1]["error_code"] == "outcome_unknown"


def skipped_counter(channel: str, reason: str = "suppressed") -> float:
    labels = {"channel": channel, "reason": reason}
    return REGISTRY.get_sample_value("notify_notifications_skipped_total", labels) or 0.0


def test_a_suppressed_recipient_is_skipped_at_claim_without_a_provider_call() -> None:
    store, sms = FakeStore({1: row(1)}), FakeProvider()
    store.suppressed.add((Channel.SMS, "+14155550100"))
    before = skipped_counter("sms")
    outcome = deliver(runtime(store, sms), 1, Channel.SMS)
    assert (outcome.status, outcome.code) == ("skipped", "suppressed")
    assert sms.calls == 0 and store.finished == []
    assert skipped_counter("sms") == before + 1


def test_a_batch_sends_the_others_and_skips_the_suppressed() -> None:
    store = FakeStore({1: row(1), 2: msgspec.structs.replace(row(2), recipient="+14155550102")})
    store.suppressed.add((Channel.SMS, "+14155550102"))
    sms = FakeProvider("SM1")
    results = deliver_many(runtime(store, sms), [1, 2], Channel.SMS)
    assert sorted((nid, o.status, o.code) for nid, o in results) == [
        (1, "sent", None), (2, "skipped", "suppressed"),
    ]  # fmt: skip
    assert sms.calls == 1 and [f["id"] for f in store.finished] == [1]


@pytest.mark.parametrize(
    ("channel", "error", "reason"),
    [
        (Channel.SMS, PermanentDeliveryError("21610", "unsubscribed"), "21610"),
        (Channel.PUSH, PermanentDeliveryError("UNREGISTERED", "gone"), "unregistered"),
        (Channel.PUSH, PermanentDeliveryError("SENDER_ID_MISMATCH", "x"), "invalid_token"),
        (
            Channel.PUSH,
            PermanentDeliveryError(
                "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token"
            ),
            "invalid_token",
        ),
    ],
)
def test_a_provider_answer_that_condemns_the_recipient_suppresses_it_with_the_failure(
    channel: Channel, error: PermanentDeliveryError, reason: str
) -> None:
    failing = row(4, channel)
    store, provider = FakeStore({4: failing}), FakeProvider(error)
    rt = runtime(store, provider, provider)
    assert deliver(rt, 4, channel).status == "failed"
    [done] = store.finished  # one record: the failed attempt and the suppression together
    assert (done["status"], done["error_code"]) == ("failed", error.code)
    assert done["suppress"] == {
        "channel": channel, "recipient": failing.recipient, "reason": reason,
        "source": "notification:4",
    }  # fmt: skip


@pytest.mark.parametrize(
    "error",
    [
        ConfigurationError("THIRD_PARTY_AUTH_ERROR", "Auth error from APNS or Web Push Service"),
        PermanentDeliveryError("INVALID_ARGUMENT", "Invalid value at 'message.data'"),
        TransientDeliveryError("UNAVAILABLE", "try later"),
    ],
)
def test_other_push_errors_suppress_nothing(error: Exception) -> None:
    store, push = FakeStore({5: row(5, Channel.PUSH)}), FakeProvider(error)
    deliver(runtime(store, FakeProvider(), push), 5, Channel.PUSH)
    assert store.finished[0]["suppress"] is None
