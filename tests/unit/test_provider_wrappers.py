"""The SDK wrappers with pytest-mock: right calls out, right errors back."""

from __future__ import annotations

import base64
import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any
from unittest import mock
from urllib.parse import parse_qs

import pytest
import urllib3
from firebase_admin import exceptions, messaging
from pytest_mock import MockerFixture
from twilio.base import values
from twilio.base.exceptions import TwilioRestException

from notify.settings import Settings
from sandbox.google.identifiers import installation_id, registration_token
from schemas import (
    AmbiguousDeliveryError,
    ConfigurationError,
    PermanentDeliveryError,
    PushId,
    RefusedDeliveryError,
    TransientDeliveryError,
)
from tasks.providers.fcm_push import FcmPush
from tasks.providers.twilio_http import Urllib3HttpClient
from tasks.providers.twilio_sms import TwilioSms

SETTINGS = Settings(
    twilio_account_sid="AC" + "1" * 32, twilio_auth_token="secret",
    twilio_phone_number="+15005550006", twilio_api_url="http://127.0.0.1:9",
)  # fmt: skip


@pytest.fixture
def create(mocker: MockerFixture) -> Any:
    return mocker.patch("twilio.rest.api.v2010.account.message.MessageList.create")


def test_sms_sends_from_the_configured_number(create: Any) -> None:
    create.return_value.sid = "SM123"
    assert TwilioSms(SETTINGS).send("+14155550100", "hello") == "SM123"
    create.assert_called_once_with(
        to="+14155550100", from_="+15005550006", body="hello", status_callback=values.unset
    )


def test_a_messaging_service_replaces_the_from_number(create: Any) -> None:
    create.return_value.sid = "SM124"
    settings = replace(SETTINGS, twilio_messaging_service_sid="MG" + "2" * 32)
    assert TwilioSms(settings).send("+14155550100", "hello") == "SM124"
    create.assert_called_once_with(
        to="+14155550100",
        body="hello",
        messaging_service_sid="MG" + "2" * 32,
        status_callback=values.unset,
    )


def test_missing_configuration_fails_without_calling_twilio(create: Any) -> None:
    for settings in (
        Settings(twilio_account_sid="AC1", twilio_auth_token="t"),
        Settings(twilio_phone_number="+15005550006"),
    ):
        with pytest.raises(ConfigurationError):
            TwilioSms(settings).send("+14155550100", "hello")
    create.assert_not_called()


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [(400, 21211, PermanentDeliveryError), (401, 20003, ConfigurationError),
     (503, 20503, RefusedDeliveryError), (429, 20429, RefusedDeliveryError),
     (500, 20500, TransientDeliveryError)],
)  # fmt: skip
def test_twilio_errors_map_to_the_error_tree(
    create: Any, status: int, code: int, error: type[Exception]
) -> None:
    create.side_effect = TwilioRestException(status, "uri", msg="nope", code=code)
    with pytest.raises(error) as info:
        TwilioSms(SETTINGS).send("+14155550100", "hello")
    assert type(info.value) is error and info.value.code == str(code)  # type: ignore[attr-defined]


def reply(status: int, body: dict[str, Any], **headers: str) -> urllib3.HTTPResponse:
    return urllib3.HTTPResponse(
        body=json.dumps(body).encode(), status=status, preload_content=True,
        headers={"Content-Type": "application/json", **headers},
    )  # fmt: skip


@pytest.fixture
def wire(mocker: MockerFixture) -> tuple[TwilioSms, Any]:
    """The real SDK and our transport, with urllib3's pool as the only stand-in."""
    sms = TwilioSms(SETTINGS)
    _, http = sms._client()
    return sms, mocker.patch.object(http.pool, "request")


def test_the_sdk_request_goes_out_as_twilio_expects(wire: tuple[TwilioSms, Any]) -> None:
    sms, request = wire
    request.return_value = reply(201, {"sid": "SM1", "status": "queued"})
    assert sms.send("+14155550100", "hi & bye") == "SM1"
    method, url = request.call_args.args
    kwargs = request.call_args.kwargs
    assert method == "POST"
    assert (
        url == f"http://127.0.0.1:9/2010-04-01/Accounts/{SETTINGS.twilio_account_sid}/Messages.json"
    )
    assert parse_qs(kwargs["body"]) == {
        "To": ["+14155550100"], "From": ["+15005550006"], "Body": ["hi & bye"]
    }  # fmt: skip
    auth = base64.b64decode(kwargs["headers"]["Authorization"].split()[1]).decode()
    assert auth == f"{SETTINGS.twilio_account_sid}:secret"
    assert kwargs["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert kwargs["timeout"].total == SETTINGS.provider_timeout_seconds


def test_with_a_public_url_every_sms_asks_for_status_callbacks(mocker: MockerFixture) -> None:
    sms = TwilioSms(dataclasses.replace(SETTINGS, public_url="https://notify.example.com"))
    _, http = sms._client()
    request = mocker.patch.object(http.pool, "request")
    request.return_value = reply(201, {"sid": "SM1", "status": "queued"})
    sms.send("+14155550100", "hi")
    sent = parse_qs(request.call_args.kwargs["body"])
    assert sent["StatusCallback"] == ["https://notify.example.com/webhooks/twilio/status"]


def test_a_receipt_lookup_fetches_the_message_by_sid(wire: tuple[TwilioSms, Any]) -> None:
    sms, request = wire
    request.return_value = reply(200, {"sid": "SM1", "status": "undelivered", "error_code": 30003})
    assert sms.fetch_status("SM1") == ("undelivered", "30003")
    method, url = request.call_args.args
    assert method == "GET" and url.endswith(
        f"/Accounts/{SETTINGS.twilio_account_sid}/Messages/SM1.json"
    )
    request.return_value = reply(200, {"sid": "SM1", "status": "delivered", "error_code": None})
    assert sms.fetch_status("SM1") == ("delivered", None)


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [(404, 20404, PermanentDeliveryError), (429, 20429, RefusedDeliveryError),
     (401, 20003, ConfigurationError)],
)  # fmt: skip
def test_receipt_lookup_errors_map_to_the_error_tree(
    wire: tuple[TwilioSms, Any], status: int, code: int, error: type[Exception]
) -> None:
    sms, request = wire
    request.return_value = reply(status, {"code": code, "message": "no", "status": status})
    with pytest.raises(error) as info:
        sms.fetch_status("SM1")
    # An unknown SID is not a configuration error here, as it would be for a send.
    assert type(info.value) is error


def test_query_parameters_and_the_real_host_are_kept() -> None:
    http = Urllib3HttpClient("https://api.twilio.com", timeout=3)
    with mock.patch.object(http.pool, "request", return_value=reply(200, {})) as request:
        http.request("GET", "https://api.twilio.com/x.json", params={"To": "+1415", "n": [1, 2]})
    assert request.call_args.args[1] == "https://api.twilio.com/x.json?To=%2B1415&n=1&n=2"


def test_retry_after_comes_from_this_threads_last_response(wire: tuple[TwilioSms, Any]) -> None:
    sms, request = wire
    request.return_value = reply(
        429, {"code": 20429, "message": "Too Many Requests", "status": 429}, **{"Retry-After": "7"}
    )
    with pytest.raises(TransientDeliveryError) as info:
        sms.send("+14155550100", "hello")
    assert (info.value.code, info.value.retry_after) == ("20429", 7.0)


def test_a_permanent_error_keeps_twilios_code(wire: tuple[TwilioSms, Any]) -> None:
    sms, request = wire
    request.return_value = reply(400, {"code": 21211, "message": "Invalid 'To'", "status": 400})
    with pytest.raises(PermanentDeliveryError) as info:
        sms.send("+14155550100", "hello")
    assert info.value.code == "21211"


@pytest.mark.parametrize(
    ("exc", "code", "error"),
    [(urllib3.exceptions.ReadTimeoutError(None, "/x?To=+1415", "read timed out"), "timeout",
      AmbiguousDeliveryError),
     (urllib3.exceptions.ConnectTimeoutError("connect timed out"), "unreachable",
      RefusedDeliveryError),
     (urllib3.exceptions.NewConnectionError(None, "refused"), "unreachable",  # type: ignore[arg-type]
      RefusedDeliveryError),
     (urllib3.exceptions.ProtocolError("reset"), "connection_error", AmbiguousDeliveryError)],
)  # fmt: skip
def test_network_failures_are_transient(
    wire: tuple[TwilioSms, Any], exc: Exception, code: str, error: type[Exception]
) -> None:
    sms, request = wire
    request.side_effect = exc
    with pytest.raises(TransientDeliveryError) as info:
        sms.send("+14155550100", "hello")
    assert type(info.value) is error and info.value.code == code
    assert "+1415" not in info.value.message  # no query strings (numbers) in error text


@pytest.fixture
def push(mocker: MockerFixture) -> tuple[FcmPush, Any]:
    fcm = FcmPush(Settings())
    mocker.patch.object(fcm, "app", return_value=mocker.sentinel.app)
    return fcm, mocker.patch("firebase_admin.messaging.send")


TOKEN, FID = registration_token("ann-phone"), installation_id("ann-phone")


def test_push_builds_the_message_and_returns_its_name(push: tuple[FcmPush, Any]) -> None:
    fcm, send = push
    send.return_value = "projects/p/messages/1"
    assert fcm.send(TOKEN, "Title", "Body", {"k": "v"}) == "projects/p/messages/1"
    message = send.call_args.args[0]
    assert (message.token, message.notification.title, message.notification.body, message.data) == (
        TOKEN,
        "Title",
        "Body",
        {"k": "v"},
    )


def test_a_registration_token_goes_as_token_and_an_installation_id_as_fid(
    push: tuple[FcmPush, Any],
) -> None:
    # pytest turns warnings into errors: firebase-admin's deprecation of `token=` must not
    # escape, from any of the sender threads building messages at once.
    fcm, send = push
    send.return_value = "projects/p/messages/1"
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: fcm.send(TOKEN, None, "Body", None), range(200)))
    fcm.send(FID, None, "Body", None, PushId.FID)
    targets = {(m.token, m.fid) for m in (call.args[0] for call in send.call_args_list)}
    assert targets == {(TOKEN, None), (None, FID)}
    with pytest.warns(DeprecationWarning, match="Message.token is deprecated"):
        messaging.Message(token=TOKEN)  # the silencing stayed local


class _Resp:
    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status_code = status
        self.headers = headers


@pytest.mark.parametrize(
    ("exc", "error", "code"),
    [
        (messaging.UnregisteredError("gone", http_response=_Resp(404, {})),
         PermanentDeliveryError, "UNREGISTERED"),
        (messaging.SenderIdMismatchError("wrong", http_response=_Resp(403, {})),
         PermanentDeliveryError, "SENDER_ID_MISMATCH"),
        (exceptions.InvalidArgumentError("bad", http_response=_Resp(400, {})),
         PermanentDeliveryError, "INVALID_ARGUMENT"),
        (exceptions.UnavailableError("later", http_response=_Resp(503, {})),
         TransientDeliveryError, "UNAVAILABLE"),
        (exceptions.InternalError("oops", http_response=_Resp(500, {})),
         TransientDeliveryError, "INTERNAL"),
        (messaging.ThirdPartyAuthError("apns", http_response=_Resp(401, {})),
         ConfigurationError, "THIRD_PARTY_AUTH_ERROR"),
    ],
)  # fmt: skip
def test_firebase_errors_map_to_the_error_tree(
    push: tuple[FcmPush, Any], exc: Exception, error: type[Exception], code: str
) -> None:
    fcm, send = push
    send.side_effect = exc
    with pytest.raises(error) as info:
        fcm.send(TOKEN, None, "Body", None)
    assert type(info.value) is error and info.value.code == code  # type: ignore[attr-defined]


def test_quota_exceeded_carries_retry_after(push: tuple[FcmPush, Any]) -> None:
    fcm, send = push
    send.side_effect = messaging.QuotaExceededError(
        "slow", http_response=_Resp(429, {"Retry-After": "12"})
    )
    with pytest.raises(TransientDeliveryError) as info:
        fcm.send(TOKEN, None, "Body", None)
    assert (info.value.code, info.value.retry_after) == ("QUOTA_EXCEEDED", 12.0)


def test_a_missing_credentials_file_is_a_configuration_error(tmp_path: Any) -> None:
    fcm = FcmPush(Settings(google_credentials=str(tmp_path / "missing.json")))
    with pytest.raises(ConfigurationError):
        fcm.send(TOKEN, None, "Body", None)
