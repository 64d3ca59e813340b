"""The provider error table and backoff: pure functions, table-driven."""

from __future__ import annotations

import random

import pytest

from schemas import Channel, Reason
from tasks.classification import (
    backoff,
    classify_fcm,
    classify_token_refusal,
    classify_twilio,
    quota_floor,
    retry_after_seconds,
    suppression_for,
)


@pytest.mark.parametrize("code", [21211, 21614, 21610, 21408, 30005, 30006, 21617, 21602])
def test_twilio_permanent_codes(code: int) -> None:
    assert classify_twilio(400, code) == "permanent"


@pytest.mark.parametrize("code", [20003, 21606, 21608, 21603])
def test_twilio_configuration_codes(code: int) -> None:
    assert classify_twilio(400, code) == "config"


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (429, 20429, "transient"),
        (429, None, "transient"),
        (500, None, "transient"),
        (503, 20503, "transient"),
        (502, 99999, "transient"),  # unknown code, server side
        (400, 99999, "permanent"),  # unknown code, client side: retrying cannot help
        (401, None, "config"),
        (403, None, "config"),
        (None, None, "transient"),  # no response at all
    ],
)
def test_twilio_by_status(status: int | None, code: int | None, kind: str) -> None:
    assert classify_twilio(status, code) == kind


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("UNREGISTERED", "permanent"),
        ("SENDER_ID_MISMATCH", "permanent"),
        ("INVALID_ARGUMENT", "permanent"),
        ("QUOTA_EXCEEDED", "transient"),
        ("UNAVAILABLE", "transient"),
        ("INTERNAL", "transient"),
        ("THIRD_PARTY_AUTH_ERROR", "config"),
        ("UNAUTHENTICATED", "config"),
    ],
)
def test_fcm_codes(code: str, kind: str) -> None:
    assert classify_fcm(code) == kind


def test_unknown_fcm_codes_fall_back_to_the_status() -> None:
    assert classify_fcm("SOMETHING_NEW", 503) == "transient"
    assert classify_fcm("SOMETHING_NEW", 400) == "permanent"


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(7)
    delays = [backoff(n, base=1, cap=30, rng=rng) for n in range(1, 9)]
    for attempt, delay in enumerate(delays, 1):
        ceiling = min(30, 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 30


def test_retry_after_is_a_floor_bounded_by_its_own_cap() -> None:
    rng = random.Random(1)
    assert backoff(1, base=1, cap=60, retry_after=20, rng=rng) == 20
    assert backoff(1, base=1, cap=5, retry_after=20, rng=rng) == 5
    assert backoff(1, base=1, cap=5, retry_after=20, retry_after_cap=150, rng=rng) == 20
    assert backoff(6, base=1, cap=60, retry_after=0.1, rng=rng) >= 16


@pytest.mark.parametrize(
    ("header", "seconds"), [("3", 3.0), ("0.5", 0.5), ("-1", 0.0), ("", None), (None, None),
                            ("Wed, 21 Oct 2026 07:28:00 GMT", None)],
)  # fmt: skip
def test_retry_after_header(header: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(header) == seconds


BAD_TOKEN = "The registration token is not a valid FCM registration token"


@pytest.mark.parametrize(
    ("channel", "code", "message", "reason"),
    [
        (Channel.SMS, "21610", "Attempt to send to unsubscribed recipient", Reason.TWILIO_21610),
        (Channel.PUSH, "UNREGISTERED", "Requested entity was not found.", Reason.UNREGISTERED),
        (Channel.PUSH, "SENDER_ID_MISMATCH", "SenderId mismatch", Reason.INVALID_TOKEN),
        (Channel.PUSH, "INVALID_ARGUMENT", BAD_TOKEN, Reason.INVALID_TOKEN),
        (Channel.PUSH, "INVALID_ARGUMENT", BAD_TOKEN.lower(), Reason.INVALID_TOKEN),
        # Another field of the message is wrong: the token may be fine.
        (Channel.PUSH, "INVALID_ARGUMENT", "Invalid value at 'message.data'", None),
        # Our APNs / web-push credentials at FCM, not the device.
        (Channel.PUSH, "THIRD_PARTY_AUTH_ERROR", "Auth error from APNS", None),
        (Channel.SMS, "21211", "The 'To' number is not a valid phone number.", None),
        (Channel.SMS, "30003", "Unreachable destination handset", None),
        (Channel.PUSH, "21610", "a push never has a Twilio code", None),
        (Channel.SMS, "UNREGISTERED", "nor an SMS an FCM one", None),
    ],
)
def test_which_provider_answers_suppress_the_recipient(
    channel: Channel, code: str, message: str, reason: Reason | None
) -> None:
    assert suppression_for(channel, code, message) == reason


def test_a_token_refusal_is_configuration_and_an_outage_is_transient() -> None:
    assert classify_token_refusal(False, {"error": "invalid_grant"}) == "config"
    assert classify_token_refusal(False, {"error": "invalid_client"}) == "config"
    assert classify_token_refusal(True, {"error": "internal_failure"}) == "transient"
    assert classify_token_refusal(False, "<html>502</html>") == "transient"  # a proxy's page
    assert classify_token_refusal(False, {"access_token_missing": True}) == "transient"


def test_quota_answers_without_retry_after_wait_from_the_base_and_double() -> None:
    floors = [quota_floor(Channel.PUSH, "QUOTA_EXCEEDED", None, n, 60.0) for n in (1, 2, 3)]
    assert floors == [60.0, 120.0, 240.0]
    assert quota_floor(Channel.PUSH, "RESOURCE_EXHAUSTED", 5.0, 3, 60.0) == 5.0  # Retry-After
    assert quota_floor(Channel.PUSH, "UNAVAILABLE", None, 3, 60.0) is None
    assert quota_floor(Channel.SMS, "QUOTA_EXCEEDED", None, 1, 60.0) is None
