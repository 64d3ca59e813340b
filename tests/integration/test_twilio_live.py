"""Opt-in: the SMS wrapper against a real Twilio *test* account (no message is delivered).

Run with: TWILIO_LIVE=1 TWILIO_ACCOUNT_SID=AC... TWILIO_AUTH_TOKEN=... \\
          .venv/bin/pytest -m twilio_live tests/integration/test_twilio_live.py
Test credentials accept Twilio's magic numbers: From +15005550006 succeeds, To +15005550001
is rejected with 21211.
"""

from __future__ import annotations

import os

import pytest

from notify.settings import Settings
from schemas import PermanentDeliveryError
from tasks.providers.twilio_sms import TwilioSms

pytestmark = [
    pytest.mark.twilio_live,
    pytest.mark.skipif(
        not (os.environ.get("TWILIO_LIVE") and os.environ.get("TWILIO_ACCOUNT_SID")),
        reason="opt in with TWILIO_LIVE=1 and test-account TWILIO_ACCOUNT_SID/AUTH_TOKEN",
    ),
]


@pytest.fixture
def sms() -> TwilioSms:
    env = {**os.environ, "TWILIO_PHONE_NUMBER": "+15005550006"}
    env.pop("TWILIO_API_URL", None)  # the real API
    return TwilioSms(Settings.from_env(env))


def test_a_valid_send_returns_a_message_sid(sms: TwilioSms) -> None:
    assert sms.send("+14155550100", "notify live test").startswith("SM")


def test_an_invalid_number_is_a_permanent_21211(sms: TwilioSms) -> None:
    with pytest.raises(PermanentDeliveryError) as info:
        sms.send("+15005550001", "notify live test")
    assert info.value.code == "21211"
