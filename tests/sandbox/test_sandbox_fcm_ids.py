"""FCM device identifiers: shapes the emulator accepts, and FCM's answer to the rest."""

from __future__ import annotations

import warnings
from typing import Any

import firebase_admin
import pytest
import requests
from firebase_admin import exceptions, messaging

from sandbox import Sandbox
from sandbox.google.identifiers import (
    INVALID_TOKEN_MESSAGE,
    installation_id,
    is_installation_id,
    is_registration_token,
    registration_token,
)
from tests.sandbox.helpers import PROJECT

FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"


def _send(app: firebase_admin.App, **target: str) -> str:
    # Message(token=...) warns in firebase-admin 7.7; the field is still sent as "token".
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        message = messaging.Message(notification=messaging.Notification(body="hi"), **target)
    return str(messaging.send(message, app=app))


def test_fake_identifiers_are_well_formed_and_deterministic() -> None:
    token, fid = registration_token("ann-phone"), installation_id("ann-phone")

    assert token == registration_token("ann-phone") != registration_token("ann-tablet")
    assert is_registration_token(token) and 140 <= len(token) <= 200
    assert token.count(":") == 1 and token.split(":")[1].startswith("APA91b")
    assert token.startswith(fid + ":")  # current tokens start with the app's FID
    assert is_installation_id(fid) and len(fid) == 22 and fid[0] in "cdef"
    assert {installation_id(str(n))[0] for n in range(200)} == set("cdef")


@pytest.mark.parametrize(
    "value",
    [
        "tok-1",
        "",
        "c" * 21,  # one short
        "a" + "A" * 21,  # header bits wrong: FIDs start with c-f
        "dAAAAAAAAAAAAAAAAAAAA=",  # padding is not base64url
        registration_token("x"),  # a token is not an FID
    ],
)
def test_malformed_fids_are_rejected(value: str) -> None:
    assert not is_installation_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "tok-1",
        installation_id("x"),  # an FID is not a token
        registration_token("x").replace(":APA91b", ":APA91c"),
        registration_token("x").replace(":", ""),
        registration_token("x")[:60],  # truncated
        registration_token("x") + ":",
        registration_token("x").replace("-", "+").replace("_", "/") + "+/",
    ],
)
def test_malformed_registration_tokens_are_rejected(value: str) -> None:
    assert not is_registration_token(value)


@pytest.mark.parametrize(
    "target",
    [
        {"token": "tok-1"},
        {"token": installation_id("ann")},
        {"fid": registration_token("ann")},
        {"fid": "tok-1"},
    ],
    ids=["junk-token", "fid-as-token", "token-as-fid", "junk-fid"],
)
def test_sdk_gets_fcm_invalid_argument_for_a_malformed_target(
    sandbox: Sandbox, fcm_app: firebase_admin.App, target: dict[str, str]
) -> None:
    with pytest.raises(exceptions.InvalidArgumentError) as err:
        _send(fcm_app, **target)

    assert err.value.http_response.status_code == 400
    assert err.value.http_response.json() == {
        "error": {
            "code": 400,
            "message": INVALID_TOKEN_MESSAGE,
            "status": "INVALID_ARGUMENT",
            "details": [{"@type": FCM_ERROR, "errorCode": "INVALID_ARGUMENT"}],
        }
    }
    assert sandbox.messages() == []
    [logged] = sandbox.requests("push")
    assert (logged.status, logged.error) == (400, "INVALID_ARGUMENT")


@pytest.mark.parametrize(
    "target",
    [{"token": registration_token("ann")}, {"fid": installation_id("ann")}],
    ids=["token", "fid"],
)
def test_well_formed_targets_are_delivered(
    sandbox: Sandbox, fcm_app: firebase_admin.App, target: dict[str, str]
) -> None:
    name = _send(fcm_app, **target)

    [recorded] = sandbox.messages("push")
    assert (recorded.id, recorded.to) == (name, next(iter(target.values())))


def test_dry_run_checks_the_target_too(sandbox: Sandbox, fcm_app: firebase_admin.App) -> None:
    message = messaging.Message(fid="tok-1")
    with pytest.raises(exceptions.InvalidArgumentError):
        messaging.send(message, dry_run=True, app=fcm_app)


def test_sticky_unregistered_applies_to_well_formed_tokens_only(
    sandbox: Sandbox, fcm_app: firebase_admin.App
) -> None:
    gone = registration_token("uninstalled")
    sandbox.fail_recipient(gone, {"error_code": "UNREGISTERED"})
    sandbox.fail_recipient("tok-1", {"error_code": "UNREGISTERED"})

    with pytest.raises(messaging.UnregisteredError):
        _send(fcm_app, token=gone)
    # Shape is checked before the device is looked up, as FCM does.
    with pytest.raises(exceptions.InvalidArgumentError):
        _send(fcm_app, fid="tok-1")


def test_two_targets_in_one_message_is_invalid(sandbox: Sandbox) -> None:
    body: dict[str, Any] = {
        "message": {"token": registration_token("a"), "fid": installation_id("a")}
    }
    resp = requests.post(
        sandbox.fcm_url(PROJECT),
        json=body,
        headers={"Authorization": f"Bearer {sandbox.state.tokens.issue()}"},
        timeout=5,
    )

    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert "oneof field 'target' is already set" in error["message"]
