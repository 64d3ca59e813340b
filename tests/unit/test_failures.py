"""The pure decision after a failed provider call (tasks/failures.py)."""

from __future__ import annotations

import pytest

from notify.settings import Settings
from schemas import (
    AmbiguousDeliveryError,
    AttemptOutcome,
    Channel,
    ConfigurationError,
    PermanentDeliveryError,
    Reason,
    RefusedDeliveryError,
    Status,
    TransientDeliveryError,
)
from tasks import failures
from tests.unit.test_delivery import row

SETTINGS = Settings.from_env(
    {"NOTIFY_MAX_SEND_ATTEMPTS": "3", "NOTIFY_RETRY_BASE_SECONDS": "1",
     "NOTIFY_PROVIDER_TIMEOUT_SECONDS": "7"}
)  # fmt: skip


def test_a_transient_error_within_the_attempts_retries_with_backoff() -> None:
    failure = failures.decide(row(1, attempts=1), TransientDeliveryError("20429", "busy"), SETTINGS)
    assert failure.status is Status.PENDING and failure.outcome is AttemptOutcome.TRANSIENT_ERROR
    assert failure.retry_in is not None and 0 < failure.retry_in <= SETTINGS.retry_max_seconds
    assert not failure.unsure and failure.suppress is None


def test_a_transient_error_on_the_last_attempt_stops() -> None:
    failure = failures.decide(row(1, attempts=3), TransientDeliveryError("20429", "busy"), SETTINGS)
    assert failure.status is Status.FAILED and failure.retry_in is None


def test_the_providers_hint_sets_the_least_wait() -> None:
    exc = TransientDeliveryError("20429", "busy", retry_after=12)
    failure = failures.decide(row(1, attempts=1), exc, SETTINGS)
    assert failure.retry_in is not None and failure.retry_in >= 12


@pytest.mark.parametrize("attempts", [1, 3, 9])
def test_a_lost_sms_answer_always_looks_first_and_waits_out_the_request(attempts: int) -> None:
    exc = AmbiguousDeliveryError("timeout", "no answer")
    failure = failures.decide(row(1, attempts=attempts), exc, SETTINGS)
    assert failure.unsure and failure.status is Status.PENDING
    assert failure.retry_in is not None and failure.retry_in >= 7


def test_a_lost_push_answer_is_resent_only_within_the_attempts() -> None:
    exc = AmbiguousDeliveryError("timeout", "no answer")
    assert failures.decide(row(1, Channel.PUSH, attempts=3), exc, SETTINGS).retry_in is None
    again = failures.decide(row(1, Channel.PUSH, attempts=1), exc, SETTINGS)
    assert again.retry and not again.unsure


def test_a_permanent_answer_that_means_never_again_suppresses() -> None:
    exc = PermanentDeliveryError("21610", "unsubscribed")
    failure = failures.decide(row(1), exc, SETTINGS)
    assert failure.status is Status.FAILED and failure.suppress is Reason.TWILIO_21610
    assert failure.outcome is AttemptOutcome.PERMANENT_ERROR


def test_a_configuration_error_is_its_own_outcome() -> None:
    failure = failures.decide(row(1), ConfigurationError("20003", "bad auth"), SETTINGS)
    assert failure.kind == "config" and failure.outcome is AttemptOutcome.CONFIG_ERROR
    assert failure.retry_in is None and failure.suppress is None


def test_a_refused_sms_moves_to_the_other_provider_at_once() -> None:
    exc = RefusedDeliveryError("503", "unavailable", retry_after=30)
    failure = failures.decide(row(1, attempts=1), exc, SETTINGS, alternative="vonage")
    assert failure.move_to == "vonage" and failure.status is Status.PENDING
    assert failure.retry_in is not None and failure.retry_in < 30


def test_a_refused_sms_with_no_other_provider_retries_where_it_is() -> None:
    exc = RefusedDeliveryError("503", "unavailable", retry_after=30)
    failure = failures.decide(row(1, attempts=1), exc, SETTINGS, alternative=None)
    assert failure.move_to is None and failure.retry_in is not None and failure.retry_in >= 30


def test_a_lost_answer_at_a_provider_without_lookup_is_never_resent() -> None:
    exc = AmbiguousDeliveryError("timeout", "no answer")
    failure = failures.decide(row(1), exc, SETTINGS, has_lookup=False, alternative="twilio")
    assert failure.outcome is AttemptOutcome.UNKNOWN and failure.retry_in is None
    assert failure.move_to is None
