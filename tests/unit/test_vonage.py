"""Vonage through the real vonage SDK against the emulator (in process), and the webhook
checks and parsing, pure."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest

from harness.launcher import write_private_key
from notify.settings import Settings
from sandbox.vonage import VonageSandbox
from sandbox.vonage.signing import signed_request
from schemas import (
    AmbiguousDeliveryError,
    ConfigurationError,
    PermanentDeliveryError,
    RefusedDeliveryError,
    TransientDeliveryError,
)
from tasks.classification import classify_vonage, vonage_code
from tasks.providers.vonage_sms import VonageSms
from webhooks.forms import Rejected
from webhooks.vonage import VonageSignatures, inbound_from, price_from, receipt_from

SECRET = "a-signature-secret-of-at-least-32-bytes"
APP = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"


@pytest.fixture(scope="module")
def vonage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[VonageSandbox, VonageSms]]:
    key = tmp_path_factory.mktemp("key") / "private.key"
    public = write_private_key(key)
    with VonageSandbox(public_key=public, application_id=APP, signature_secret=SECRET) as v:
        settings = Settings(
            vonage_application_id=APP, vonage_private_key=str(key), vonage_from="+15005550007",
            vonage_api_url=v.url, provider_timeout_seconds=1,
        )  # fmt: skip
        yield v, VonageSms(settings)


def test_a_send_is_accepted_with_the_applications_jwt(
    vonage: tuple[VonageSandbox, VonageSms],
) -> None:
    v, sms = vonage
    v.reset()
    uuid = sms.send("+14155550100", "hello")
    [message] = v.messages()
    assert (message.uuid, message.to, message.from_, message.text) == (
        uuid,
        "14155550100",
        "15005550007",
        "hello",
    )


@pytest.mark.parametrize(
    ("fault", "error", "code"),
    [({"status": 503}, RefusedDeliveryError, "service-unavailable"),
     ({"problem": "throttled", "retry_after": 2}, RefusedDeliveryError, "throttled"),
     ({"problem": "internal"}, TransientDeliveryError, "1030"),
     ({"problem": "low-balance"}, ConfigurationError, "low-balance"),
     ({"problem": "unauthorized"}, ConfigurationError, "unauthorized"),
     ({"problem": "invalid-params"}, PermanentDeliveryError, "1150"),
     ({"action": "drop"}, AmbiguousDeliveryError, "connection_error"),
     ({"action": "reset"}, AmbiguousDeliveryError, "connection_error"),
     ({"action": "timeout", "delay_s": 3}, AmbiguousDeliveryError, "timeout")],
)  # fmt: skip
def test_vonage_answers_map_to_the_error_tree_by_what_the_caller_must_do(
    vonage: tuple[VonageSandbox, VonageSms], fault: dict[str, Any], error: type, code: str
) -> None:
    v, sms = vonage
    v.reset()
    v.queue_faults([fault])
    with pytest.raises(error) as info:
        sms.send("+14155550100", "hello")
    assert type(info.value) is error and info.value.code == code  # type: ignore[attr-defined]
    accepted = len(v.messages())
    # `drop` and `timeout` were accepted before the answer was lost: the SDK never resent.
    assert accepted == (1 if fault.get("action") in ("drop", "timeout") else 0)


def test_a_message_over_the_text_limit_is_permanent_and_never_sent(
    vonage: tuple[VonageSandbox, VonageSms],
) -> None:
    v, sms = vonage
    v.reset()
    with pytest.raises(PermanentDeliveryError):
        sms.send("+14155550100", "x" * 1001)  # the Messages API's `text` limit
    assert v.messages() == []


def test_missing_settings_are_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        VonageSms(Settings(vonage_from="+15005550007")).send("+14155550100", "hi")
    missing = Settings(vonage_application_id=APP, vonage_private_key=str(tmp_path / "nope"),
                       vonage_from="+15005550007")  # fmt: skip
    with pytest.raises(ConfigurationError):
        VonageSms(missing).send("+14155550100", "hi")


def test_codes_come_from_the_problem_type_and_unknown_ones_from_the_status() -> None:
    assert vonage_code("https://developer.vonage.com/api-errors/messages#1150") == "1150"
    assert vonage_code("https://developer.vonage.com/api-errors") is None
    assert classify_vonage(402, None) == "config"
    assert classify_vonage(418, None) == "permanent"
    assert classify_vonage(502, "unknown-thing") == "transient"


def signed(body: bytes, signature: str = "valid") -> tuple[bytes, str]:
    data, headers = signed_request(body, SECRET, "key", APP, signature)  # type: ignore[arg-type]
    return data, headers.get("Authorization", "")


@pytest.mark.parametrize(
    ("signature", "problem"),
    [("valid", None), ("forged", "bad_signature"), ("missing", "missing_signature"),
     ("tampered", "tampered")],
)  # fmt: skip
def test_a_webhook_needs_vonages_jwt_over_this_very_body(
    signature: str, problem: str | None
) -> None:
    body, authorization = signed(b'{"message_uuid":"x"}', signature)
    assert VonageSignatures(SECRET).problem(authorization, body) == problem


def test_a_token_without_a_payload_hash_is_refused() -> None:
    token = jwt.encode({"iat": 1}, SECRET, algorithm="HS256")
    assert VonageSignatures(SECRET).problem(f"Bearer {token}", b"{}") == "bad_signature"
    hashed = hashlib.sha256(b"{}").hexdigest()
    token = jwt.encode({"iat": 1, "payload_hash": hashed}, SECRET, algorithm="HS256")
    assert VonageSignatures(SECRET).problem(f"Bearer {token}", b"{}") is None


def test_a_status_webhook_is_a_receipt_with_its_code_and_price() -> None:
    data = json.loads(
        '{"message_uuid": "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee", "status": "undeliverable",'
        ' "error": {"type": "https://developer.vonage.com/api-errors/messages#1320",'
        ' "title": 1320}, "usage": {"currency": "EUR", "price": "0.0333"}}'
    )
    receipt = receipt_from(data, datetime.now(UTC))
    assert (receipt.provider_status, receipt.error_code) == ("undeliverable", "1320")
    price = price_from(data)
    assert price is not None and str(price.price) == "0.0333" and price.unit == "EUR"
    with pytest.raises(Rejected):
        receipt_from({"status": "delivered"}, datetime.now(UTC))


def test_an_inbound_sms_is_keyed_by_its_uuid_and_numbers_become_e164() -> None:
    message, sms = inbound_from(
        {"message_uuid": APP, "from": "14155550100", "to": "15005550007", "text": "STOP",
         "sms": {"num_messages": "1"}}
    )  # fmt: skip
    assert (sms.from_, sms.to, sms.body) == ("+14155550100", "+15005550007", "STOP")
    assert message.message_sid == APP and message.params["sms"] == '{"num_messages":"1"}'


def test_a_refused_connection_is_a_refusal(vonage: tuple[VonageSandbox, VonageSms]) -> None:
    v, sms = vonage
    v.reset()
    v.refuse_connections(1)  # the last test here: nothing after it needs the emulator
    with pytest.raises(RefusedDeliveryError) as info:
        sms.send("+14155550100", "hello")
    assert info.value.code == "unreachable" and v.messages() == []
