"""Delivery decisions with an in-package fake store and fake providers (no servers)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from prometheus_client import REGISTRY

from notify.settings import Settings
from sandbox.google.identifiers import registration_token
from schemas import (
    AmbiguousDeliveryError,
    Channel,
    ConfigurationError,
    Notification,
    PermanentDeliveryError,
    PushId,
    Status,
    TransientDeliveryError,
)
from tasks.delivery import deliver, deliver_many
from tasks.reconcile import Listed
from tasks.runtime import Runtime
from tasks.schedule import settle
from tasks.testing import FakeWorkerStore

NOW = datetime.now(UTC)
TOKEN = registration_token("ann-phone")


def row(
    nid: int,
    channel: Channel = Channel.SMS,
    attempts: int = 1,
    error_code: str | None = None,
    **extra: Any,
) -> Notification:
    return Notification(
        id=nid, idempotency_key=f"k{nid}", event_id="e", event_type="t", rule="r",
        channel=channel, recipient="+14155550100" if channel is Channel.SMS else TOKEN,
        body="hi", title=None, data=None, status=Status.SENDING, attempts=attempts,
        provider_message_id=None, error_code=error_code, send_at=None,
        updated_at=NOW - timedelta(seconds=30), **extra,
    )  # fmt: skip


def unsure(
    nid: int, attempts: int = 2, since: datetime | None = None, **extra: Any
) -> Notification:
    """A row whose earlier send lost its answer 20 s ago (or at `since`)."""
    since = since or NOW - timedelta(seconds=20)
    return row(nid, attempts=attempts, error_code="timeout", unsure_since=since, **extra)


def listed(sid: str, body: str = "hi", age: float = 19) -> Listed:
    return Listed(sid=sid, body=body, date_created=NOW - timedelta(seconds=age),
                  from_="+15005550006")  # fmt: skip


class FakeProvider:
    def __init__(self, *outcomes: str | Exception) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[tuple[Any, ...]] = []
        self.at_twilio: list[Listed] = []
        self.lookups: list[datetime] = []
        self.lookup_error: Exception | None = None

    def send(self, *args: Any) -> str:
        self.calls.append(args)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def candidates(self, to: str, body: str, since: datetime) -> tuple[list[Listed], bool]:
        self.lookups.append(since)
        if self.lookup_error is not None:
            raise self.lookup_error
        return [m for m in self.at_twilio if m.body == body], True


def runtime(
    store: FakeWorkerStore, sms: FakeProvider, push: FakeProvider | None = None, **settings: Any
) -> Runtime:
    settings = {"max_send_attempts": 3, "retry_base_seconds": 1, "retry_max_seconds": 10,
                "reconcile_wait_seconds": 0, **settings}  # fmt: skip
    return Runtime(settings=Settings(**settings), db=store, sms=sms,  # type: ignore[arg-type]
                   push=push or FakeProvider(), pid=0,  # type: ignore[arg-type]
                   senders=ThreadPoolExecutor(2))  # fmt: skip


def counter(channel: str, status: str) -> float:
    labels = {"channel": channel, "status": status}
    return REGISTRY.get_sample_value("notify_notifications_total", labels) or 0.0


def test_a_row_that_is_not_pending_is_skipped_without_a_provider_call() -> None:
    sms = FakeProvider()
    assert deliver(runtime(FakeWorkerStore({}), sms), 1, Channel.SMS).status == "skipped"
    assert sms.calls == []


def test_success_records_sent_with_the_provider_id() -> None:
    store, before = FakeWorkerStore({1: row(1)}), counter("sms", "sent")
    assert deliver(runtime(store, FakeProvider("SM1")), 1, Channel.SMS).status == "sent"
    [done] = store.finished
    assert (done["status"], done["provider_message_id"]) == ("sent", "SM1")
    assert counter("sms", "sent") == before + 1


def test_recording_an_outcome_outlasts_a_postgres_blip_without_resending() -> None:
    store, sms = FakeWorkerStore({1: row(1)}), FakeProvider("SM1")
    store.record_failures = [ConnectionRefusedError("postgres restarting")] * 2
    assert deliver(runtime(store, sms), 1, Channel.SMS).status == "sent"
    assert len(sms.calls) == 1 and [f["status"] for f in store.finished] == ["sent"]


def test_a_lookup_waits_until_twilios_list_can_show_the_send() -> None:
    # Its own clock: NOW is read at import, which may be long before this test runs.
    recent = unsure(1, since=datetime.now(UTC) - timedelta(seconds=20))
    store, sms = FakeWorkerStore({1: recent}), FakeProvider()
    outcome = deliver(runtime(store, sms, reconcile_wait_seconds=60), 1, Channel.SMS)
    assert (outcome.status, outcome.code) == ("retried", "reconcile_wait")
    assert outcome.retry_in is not None and outcome.retry_in >= 39  # 60 s from the send
    assert sms.lookups == [] and sms.calls == []  # neither asked nor sent


def test_after_a_lost_answer_a_message_twilio_has_is_not_sent_again() -> None:
    store, sms = FakeWorkerStore({1: unsure(1)}), FakeProvider()
    sms.at_twilio = [listed("SMother", body="something else"), listed("SMearlier")]
    assert deliver(runtime(store, sms), 1, Channel.SMS).status == "sent"
    [done] = store.finished
    assert sms.calls == [] and sms.lookups == [NOW - timedelta(seconds=20)]
    assert (done["outcome"], done["provider_message_id"]) == ("reconciled", "SMearlier")


def test_after_a_lost_answer_an_sms_twilio_never_got_is_sent() -> None:
    store, sms = FakeWorkerStore({1: unsure(1)}), FakeProvider("SM2")
    assert deliver(runtime(store, sms), 1, Channel.SMS).status == "sent"
    assert len(sms.calls) == 1 and store.finished[0]["outcome"] == "sent"


def test_the_same_text_another_notification_already_holds_is_not_taken_for_ours() -> None:
    store, sms = FakeWorkerStore({1: unsure(1)}), FakeProvider("SM2")
    sms.at_twilio = [listed("SMtheirs")]
    store.holders = {"SMtheirs": 7}
    assert deliver(runtime(store, sms), 1, Channel.SMS).status == "sent"
    assert len(sms.calls) == 1 and store.finished[0]["provider_message_id"] == "SM2"


def test_a_failed_lookup_asks_again_later_and_is_not_a_send() -> None:
    store, sms = FakeWorkerStore({1: unsure(1)}), FakeProvider("SM2")
    sms.lookup_error = TimeoutError("slow")
    outcome = deliver(runtime(store, sms), 1, Channel.SMS)
    assert (outcome.status, outcome.code, sms.calls) == ("retried", "reconcile_failed", [])
    [done] = store.finished
    assert (done["status"], done["outcome"], done["lookup_failed"]) == (
        "pending", "lookup_failed", True
    )  # fmt: skip


def test_failed_lookups_do_not_use_up_the_send_attempts() -> None:
    # Ten attempts, nine of them failed lookups: one send so far of the three allowed.
    store = FakeWorkerStore({1: row(1, attempts=10, error_code="20503", lookup_failures=9)})
    outcome = deliver(runtime(store, FakeProvider(TransientDeliveryError("20503", "x"))), 1,
                      Channel.SMS)  # fmt: skip
    assert (outcome.status, store.finished[0]["status"]) == ("retried", "pending")


def test_lookups_failing_past_the_budget_fail_as_outcome_unknown_without_sending() -> None:
    since = NOW - timedelta(seconds=120)
    store = FakeWorkerStore({1: row(1, attempts=9, lookup_failures=7, unsure_since=since)})
    sms = FakeProvider("SM2")
    sms.lookup_error = ConnectionRefusedError("twilio down")
    outcome = deliver(runtime(store, sms, reconcile_budget_seconds=60), 1, Channel.SMS)
    assert (outcome.status, outcome.code, sms.calls) == ("failed", "outcome_unknown", [])
    [done] = store.finished
    assert (done["status"], done["outcome"]) == ("failed", "unknown")


def test_a_lost_answer_on_the_last_allowed_send_is_still_looked_for() -> None:
    store = FakeWorkerStore({1: row(1, attempts=3)})
    sms = FakeProvider(AmbiguousDeliveryError("connection_error", "closed"))
    outcome = deliver(runtime(store, sms), 1, Channel.SMS)
    assert outcome.status == "retried" and store.finished[0]["unsure"] is True
    # Twilio does not have it, and every send is used up: failed, not sent a fourth time.
    store = FakeWorkerStore({1: unsure(1, attempts=4)})
    sms = FakeProvider("SM4")
    outcome = deliver(runtime(store, sms), 1, Channel.SMS)
    assert (outcome.status, outcome.code, sms.calls) == ("failed", "timeout", [])


def test_a_first_attempt_or_a_definite_error_sends_without_looking() -> None:
    for first in (row(1, error_code=None), row(1, attempts=3, error_code="unreachable")):
        store, sms = FakeWorkerStore({1: first}), FakeProvider("SM3")
        sms.at_twilio = [listed("SMwrong")]
        assert deliver(runtime(store, sms), 1, Channel.SMS).status == "sent"
        assert sms.lookups == [] and store.finished[0]["provider_message_id"] == "SM3"


def test_a_request_that_never_left_is_retried_as_a_plain_transient_error() -> None:
    store = FakeWorkerStore({1: row(1)})
    sms = FakeProvider(TransientDeliveryError("unreachable", "connection refused"))
    outcome = deliver(runtime(store, sms, provider_timeout_seconds=30), 1, Channel.SMS)
    assert outcome.retry_in is not None and outcome.retry_in < 30
    assert store.finished[0]["unsure"] is False


def test_an_ambiguous_failure_waits_at_least_one_provider_timeout() -> None:
    store = FakeWorkerStore({1: row(1)})
    sms = FakeProvider(AmbiguousDeliveryError("timeout", "read timed out"))
    outcome = deliver(runtime(store, sms), 1, Channel.SMS)
    assert outcome.retry_in is not None and outcome.retry_in >= Settings().provider_timeout_seconds
    assert store.finished[0]["unsure"] is True


def test_a_permanent_error_fails_at_once() -> None:
    store = FakeWorkerStore({1: row(1)})
    sms = FakeProvider(PermanentDeliveryError("21211", "bad number"))
    outcome = deliver(runtime(store, sms), 1, Channel.SMS)
    assert (outcome.status, outcome.retry_in) == ("failed", None)
    assert (store.finished[0]["status"], store.finished[0]["error_code"]) == ("failed", "21211")


def test_a_transient_error_goes_back_to_pending_with_a_delay() -> None:
    store = FakeWorkerStore({1: row(1, attempts=1)})
    sms = FakeProvider(TransientDeliveryError("20429", "slow", retry_after=4))
    outcome = deliver(runtime(store, sms), 1, Channel.SMS)
    assert outcome.status == "retried" and outcome.retry_in is not None and outcome.retry_in >= 4
    assert store.finished[0]["status"] == "pending"


def test_the_last_allowed_attempt_fails_instead_of_retrying() -> None:
    store = FakeWorkerStore({1: row(1, attempts=3)})
    outcome = deliver(runtime(store, FakeProvider(TransientDeliveryError("20503", "x"))), 1,
                      Channel.SMS)  # fmt: skip
    assert (outcome.status, store.finished[0]["status"]) == ("failed", "failed")


def test_an_sdk_surprise_is_retried_as_internal_error() -> None:
    store = FakeWorkerStore({1: row(1)})
    outcome = deliver(runtime(store, FakeProvider(KeyError("x"))), 1, Channel.SMS)
    assert (outcome.status, outcome.code) == ("retried", "internal_error")


def test_a_configuration_error_is_logged_loudly(caplog: pytest.LogCaptureFixture) -> None:
    store = FakeWorkerStore({1: row(1)})
    caplog.set_level("ERROR", logger="notify")
    import logging

    logging.getLogger("notify").propagate = True  # let caplog see it
    try:
        deliver(runtime(store, FakeProvider(ConfigurationError("20003", "auth"))), 1, Channel.SMS)
    finally:
        logging.getLogger("notify").propagate = False
    assert any(r.levelname == "ERROR" and "configuration" in r.message for r in caplog.records)


def test_a_batch_claims_once_and_sends_each_claimed_row() -> None:
    store = FakeWorkerStore({1: row(1), 3: row(3)})
    results = deliver_many(runtime(store, FakeProvider("SM1", "SM3")), [1, 2, 3], Channel.SMS)
    assert [(nid, o.status) for nid, o in results] == [(1, "sent"), (3, "sent")]


def test_the_sweeper_settles_the_unrecorded_window() -> None:
    sms = FakeProvider()
    sms.at_twilio = [listed("SM9", age=25)]
    store = FakeWorkerStore({})
    assert settle(runtime(store, sms), row(9)) == "reconciled"
    assert store.resolved[-1]["provider_message_id"] == "SM9"
    assert sms.lookups == [NOW - timedelta(seconds=30)]  # since the claim
    push_row = msgspec.structs.replace(row(10), channel=Channel.PUSH)
    assert settle(runtime(store, sms), push_row) == "unknown"
    assert store.resolved[-1]["error_code"] == "outcome_unknown"


def test_the_sweeper_waits_for_a_lookup_then_gives_up_as_outcome_unknown() -> None:
    sms, store = FakeProvider(), FakeWorkerStore({})
    sms.lookup_error = ConnectionRefusedError("twilio down")
    assert settle(runtime(store, sms), row(9)) == "deferred" and store.resolved == []
    assert settle(runtime(store, sms, reconcile_budget_seconds=10), row(9)) == "unknown"
    assert store.resolved[-1]["error_code"] == "outcome_unknown"


def test_a_push_goes_out_as_the_identifier_its_rule_names() -> None:
    for kind in (PushId.TOKEN, PushId.FID):
        push = FakeProvider("projects/p/messages/1")
        store = FakeWorkerStore({1: row(1, Channel.PUSH, push_id=kind)})
        assert deliver(runtime(store, FakeProvider(), push), 1, Channel.PUSH).status == "sent"
        assert push.calls[0][-2:] == (kind, "notify-1")  # the kind, then the collapse id


def skipped_counter(channel: str, reason: str = "suppressed") -> float:
    labels = {"channel": channel, "reason": reason}
    return REGISTRY.get_sample_value("notify_notifications_skipped_total", labels) or 0.0


def test_a_suppressed_recipient_is_skipped_at_claim_without_a_provider_call() -> None:
    store, sms = FakeWorkerStore({1: row(1)}), FakeProvider()
    store.suppressed.add((Channel.SMS, "+14155550100"))
    before = skipped_counter("sms")
    outcome = deliver(runtime(store, sms), 1, Channel.SMS)
    assert (outcome.status, outcome.code) == ("skipped", "suppressed")
    assert sms.calls == [] and store.finished == []
    assert skipped_counter("sms") == before + 1


def test_a_batch_sends_the_others_and_skips_the_suppressed() -> None:
    store = FakeWorkerStore(
        {1: row(1), 2: msgspec.structs.replace(row(2), recipient="+14155550102")}
    )
    store.suppressed.add((Channel.SMS, "+14155550102"))
    sms = FakeProvider("SM1")
    results = deliver_many(runtime(store, sms), [1, 2], Channel.SMS)
    assert sorted((nid, o.status, o.code) for nid, o in results) == [
        (1, "sent", None), (2, "skipped", "suppressed"),
    ]  # fmt: skip
    assert len(sms.calls) == 1 and [f["id"] for f in store.finished] == [1]


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
    store, provider = FakeWorkerStore({4: failing}), FakeProvider(error)
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
    store, push = FakeWorkerStore({5: row(5, Channel.PUSH)}), FakeProvider(error)
    deliver(runtime(store, FakeProvider(), push), 5, Channel.PUSH)
    assert store.finished[0]["suppress"] is None
