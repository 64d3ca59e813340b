"""The provider sandbox, exercised through the real Twilio and Firebase SDKs."""

from __future__ import annotations

import json
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import firebase_admin
import pytest
import requests
from firebase_admin import exceptions, messaging
from google.oauth2 import service_account
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client
from urllib3.util.retry import Retry

from sandbox import Sandbox, SandboxClient
from sandbox.__main__ import describe
from sandbox.google.credentials import write_service_account
from sandbox.google.identifiers import installation_id, registration_token
from sandbox.server.masking import mask_phone, mask_token
from sandbox.twilio.sms import segments
from tests.sandbox.helpers import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM,
    PROJECT,
    TO,
    SandboxTwilioHttpClient,
    sandbox_cli,
    twilio_client,
)


def _http(client: Client) -> SandboxTwilioHttpClient:
    http = client.http_client
    assert isinstance(http, SandboxTwilioHttpClient)
    return http


def _fast_retries(app: firebase_admin.App, sandbox: Sandbox, **retry: Any) -> None:
    """Mount a zero-backoff (or no-retry) adapter for the sandbox URL only."""
    service = messaging._get_messaging_service(app)
    config = Retry(allowed_methods=None, raise_on_status=False, **retry)
    service._client.session.mount(sandbox.url, HTTPAdapter(max_retries=config))


# Well-formed device identifiers: the emulator rejects malformed ones as FCM does.
FID_1, FID_2, FID_BAD, FID_GOOD = (installation_id(s) for s in ("1", "2", "bad", "good"))


def _push(fid: str = FID_1, **kwargs: Any) -> messaging.Message:
    # firebase-admin 7.7 deprecates Message(token=...) for fid (sent as "fid").
    return messaging.Message(
        fid=fid,
        notification=messaging.Notification(title="Hello", body="World"),
        data={"order": "42"},
        **kwargs,
    )


# --- Twilio ---------------------------------------------------------------


def test_twilio_create_returns_sid_and_records(sandbox: Sandbox, twilio: Client) -> None:
    msg = twilio.messages.create(to=TO, from_=FROM, body="hi there")

    assert msg.sid.startswith("SM") and len(msg.sid) == 34
    assert (msg.status, msg.direction, msg.num_segments) == ("queued", "outbound-api", "1")
    assert msg.account_sid == ACCOUNT_SID and msg.error_code is None
    assert msg.date_created is not None and msg.date_created.tzinfo is not None
    [recorded] = sandbox.messages("sms")
    assert (recorded.id, recorded.to, recorded.sender, recorded.body) == (
        msg.sid,
        TO,
        FROM,
        "hi there",
    )
    assert twilio.messages(msg.sid).fetch().body == "hi there"
    assert sandbox.messages("push") == []


def test_twilio_list_filters_and_pages(sandbox: Sandbox, twilio: Client) -> None:
    sids = [twilio.messages.create(to=TO, from_=FROM, body=f"m{i}").sid for i in range(3)]
    twilio.messages.create(to="+14155550111", from_=FROM, body="other")

    listed = twilio.messages.list(to=TO, page_size=2)

    assert [m.sid for m in listed] == list(reversed(sids))  # newest first
    with pytest.raises(TwilioRestException) as err:
        twilio.messages("SM" + "f" * 32).fetch()
    assert (err.value.status, err.value.code) == (404, 20404)


def test_twilio_messaging_service_sender(sandbox: Sandbox, twilio: Client) -> None:
    service = "MG" + "1" * 32
    msg = twilio.messages.create(to=TO, messaging_service_sid=service, body="x")

    assert (msg.status, msg.messaging_service_sid, msg.from_) == ("accepted", service, None)
    assert sandbox.messages()[0].sender == service


def test_twilio_invalid_number_is_21211(sandbox: Sandbox, twilio: Client) -> None:
    with pytest.raises(TwilioRestException) as err:
        twilio.messages.create(to="0044123", from_=FROM, body="hi")

    assert (err.value.status, err.value.code) == (400, 21211)
    assert "The 'To' number 0044123 is not a valid phone number." in err.value.msg
    assert sandbox.messages() == []
    [logged] = sandbox.requests("sms")
    assert (logged.status, logged.error, logged.recipient) == (400, "21211", "0044123")


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [({"from_": FROM}, 21602), ({"body": "hi"}, 21603)],
    ids=["missing-body", "missing-from"],
)
def test_twilio_missing_fields(twilio: Client, kwargs: dict[str, str], code: int) -> None:
    with pytest.raises(TwilioRestException) as err:
        twilio.messages.create(to=TO, **kwargs)
    assert (err.value.status, err.value.code) == (400, code)


def test_twilio_error_body_has_twilio_shape(sandbox: Sandbox) -> None:
    url = f"{sandbox.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    resp = requests.post(url, data={"To": "nope", "From": FROM, "Body": "x"}, timeout=5)

    assert resp.status_code == 400
    assert resp.json() == {
        "code": 21211,
        "message": "The 'To' number nope is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400,
    }


def test_twilio_queued_errors_then_normal(sandbox: Sandbox, twilio: Client) -> None:
    sandbox.queue_errors("sms", [{"status": 429, "code": 20429, "retry_after": 1}, {"status": 503}])

    with pytest.raises(TwilioRestException) as err:
        twilio.messages.create(to=TO, from_=FROM, body="a")
    assert (err.value.status, err.value.code) == (429, 20429)
    # The exception has no headers attribute; Retry-After comes from the client.
    last = _http(twilio).last_response
    assert last is not None and last.headers["Retry-After"] == "1"

    with pytest.raises(TwilioRestException) as err:
        twilio.messages.create(to=TO, from_=FROM, body="b")
    assert (err.value.status, err.value.code) == (503, 20503)

    assert twilio.messages.create(to=TO, from_=FROM, body="c").body == "c"
    assert [m.body for m in sandbox.messages()] == ["c"]
    assert [r.status for r in sandbox.requests("sms")] == [429, 503, 201]


def test_twilio_sticky_recipient_is_permanent(sandbox: Sandbox, twilio: Client) -> None:
    sandbox.fail_recipient(TO, {"code": 21610})

    for _ in range(2):
        with pytest.raises(TwilioRestException) as err:
            twilio.messages.create(to=TO, from_=FROM, body="stop")
        assert (err.value.status, err.value.code) == (400, 21610)
    assert twilio.messages.create(to="+14155550199", from_=FROM, body="ok").sid
    assert len(sandbox.messages()) == 1


def test_twilio_storm(sandbox: Sandbox, twilio: Client) -> None:
    sandbox.storm("sms", 3, {"status": 500})

    codes = []
    for _ in range(4):
        try:
            twilio.messages.create(to=TO, from_=FROM, body="s")
            codes.append(201)
        except TwilioRestException as exc:
            codes.append(exc.code)
    assert codes == [20500, 20500, 20500, 201]


def test_twilio_credentials_are_enforced_when_configured() -> None:
    with Sandbox(twilio_auth=(ACCOUNT_SID, AUTH_TOKEN)) as sb:
        bad, good = twilio_client(sb, "wrong-token"), twilio_client(sb)
        with pytest.raises(TwilioRestException) as err:
            bad.messages.create(to=TO, from_=FROM, body="x")
        assert (err.value.status, err.value.code) == (401, 20003)
        assert good.messages.create(to=TO, from_=FROM, body="x").sid
        assert [r.status for r in sb.requests()] == [401, 201]
        bad.http_client.session.close()
        good.http_client.session.close()


# --- Google OAuth + FCM ---------------------------------------------------


def test_fcm_send_returns_name(sandbox: Sandbox, fcm_app: firebase_admin.App) -> None:
    name = messaging.send(_push(), app=fcm_app)

    assert name.startswith(f"projects/{PROJECT}/messages/")
    [recorded] = sandbox.messages("push")
    assert (recorded.id, recorded.to, recorded.title, recorded.body) == (
        name,
        FID_1,
        "Hello",
        "World",
    )
    assert recorded.data == {"order": "42"}
    [grant] = sandbox.requests("oauth")
    assert grant.status == 200 and grant.recipient is not None
    assert grant.recipient.endswith(".iam.gserviceaccount.com")
    # The cached access token is reused for the next send.
    messaging.send(_push(FID_2), app=fcm_app)
    assert len(sandbox.requests("oauth")) == 1


def test_fcm_deprecated_token_field_still_works(
    sandbox: Sandbox, fcm_app: firebase_admin.App
) -> None:
    token = registration_token("legacy")
    with pytest.warns(DeprecationWarning, match="Message.token is deprecated"):
        message = messaging.Message(token=token)

    assert messaging.send(message, app=fcm_app)
    assert sandbox.messages()[0].to == token
    assert sandbox.messages()[0].payload["token"] == token


def test_fcm_dry_run_is_not_delivered(sandbox: Sandbox, fcm_app: firebase_admin.App) -> None:
    name = messaging.send(_push(), dry_run=True, app=fcm_app)

    assert name == f"projects/{PROJECT}/messages/fake_message_id"
    assert sandbox.messages() == []


@pytest.mark.parametrize(
    ("error", "exc_type"),
    [
        ({"error_code": "UNREGISTERED"}, messaging.UnregisteredError),
        ({"error_code": "SENDER_ID_MISMATCH"}, messaging.SenderIdMismatchError),
        ({"error_code": "INVALID_ARGUMENT"}, exceptions.InvalidArgumentError),
        ({"status": 404, "error_code": ""}, exceptions.NotFoundError),
        (
            {"status": 403, "fcm_status": "PERMISSION_DENIED", "error_code": ""},
            exceptions.PermissionDeniedError,
        ),
    ],
)
def test_fcm_sticky_token_errors(
    sandbox: Sandbox,
    fcm_app: firebase_admin.App,
    error: dict[str, Any],
    exc_type: type[Exception],
) -> None:
    sandbox.fail_recipient(FID_BAD, error)

    for _ in range(2):
        with pytest.raises(exc_type):
            messaging.send(_push(FID_BAD), app=fcm_app)
    assert messaging.send(_push(FID_GOOD), app=fcm_app)
    assert [m.to for m in sandbox.messages()] == [FID_GOOD]


def test_fcm_unregistered_error_shape(sandbox: Sandbox, fcm_app: firebase_admin.App) -> None:
    sandbox.fail_recipient(FID_BAD, {"error_code": "UNREGISTERED"})

    with pytest.raises(messaging.UnregisteredError) as err:
        messaging.send(_push(FID_BAD), app=fcm_app)

    assert isinstance(err.value, exceptions.NotFoundError)
    assert err.value.code == exceptions.NOT_FOUND
    assert err.value.http_response.json() == {
        "error": {
            "code": 404,
            "message": "Requested entity was not found.",
            "status": "NOT_FOUND",
            "details": [
                {
                    "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                    "errorCode": "UNREGISTERED",
                }
            ],
        }
    }


def test_fcm_third_party_auth_error_after_token_refreshes(
    sandbox: Sandbox, fcm_app: firebase_admin.App
) -> None:
    sandbox.fail_recipient(FID_BAD, {"error_code": "THIRD_PARTY_AUTH_ERROR"})

    with pytest.raises(messaging.ThirdPartyAuthError):
        messaging.send(_push(FID_BAD), app=fcm_app)
    # google-auth treats any 401 as a stale token: refresh + resend, twice.
    assert [r.status for r in sandbox.requests("push")] == [401, 401, 401]
    assert len(sandbox.requests("oauth")) == 3


def test_fcm_queued_quota_exceeded(sandbox: Sandbox, fcm_app: firebase_admin.App) -> None:
    sandbox.queue_errors("push", [{"status": 429, "error_code": "QUOTA_EXCEEDED"}])

    with pytest.raises(messaging.QuotaExceededError) as err:
        messaging.send(_push(), app=fcm_app)
    assert isinstance(err.value, exceptions.ResourceExhaustedError)
    assert messaging.send(_push(), app=fcm_app)  # queue drained


def test_fcm_retry_after_is_honoured_by_sdk_retries(
    sandbox: Sandbox, fcm_app: firebase_admin.App
) -> None:
    # urllib3 retries any 413/429/503 that carries Retry-After (sleeping that
    # long); "0" keeps this test instant.
    sandbox.queue_errors("push", [{"error_code": "QUOTA_EXCEEDED", "retry_after": 0}])

    assert messaging.send(_push(), app=fcm_app)
    assert [r.status for r in sandbox.requests("push")] == [429, 200]


def test_fcm_retry_after_on_exception_without_retries(
    sandbox: Sandbox, fcm_app: firebase_admin.App
) -> None:
    _fast_retries(fcm_app, sandbox, total=0)
    sandbox.queue_errors("push", [{"error_code": "QUOTA_EXCEEDED", "retry_after": 2}])

    with pytest.raises(messaging.QuotaExceededError) as err:
        messaging.send(_push(), app=fcm_app)
    assert err.value.http_response.headers["Retry-After"] == "2"


def test_fcm_single_503_is_retried_by_sdk(sandbox: Sandbox, fcm_app: firebase_admin.App) -> None:
    # firebase-admin mounts its Retry(status=4, [500, 503]) on every http://
    # and https:// URL, so the sandbox host gets it too (first retry: no wait).
    sandbox.queue_errors("push", [{"status": 503, "fcm_status": "UNAVAILABLE"}])

    assert messaging.send(_push(), app=fcm_app)
    assert [r.status for r in sandbox.requests("push")] == [503, 200]


@pytest.mark.parametrize(
    ("error", "exc_type"),
    [
        ({"status": 503, "fcm_status": "UNAVAILABLE"}, exceptions.UnavailableError),
        ({"status": 500, "fcm_status": "INTERNAL"}, exceptions.InternalError),
    ],
)
def test_fcm_server_error_storm_exhausts_retries(
    sandbox: Sandbox,
    fcm_app: firebase_admin.App,
    error: dict[str, Any],
    exc_type: type[Exception],
) -> None:
    # Same retry budget as the SDK default, minus its 0.5s exponential backoff.
    _fast_retries(fcm_app, sandbox, status=4, status_forcelist=[500, 503])
    sandbox.storm("push", 5, error)

    with pytest.raises(exc_type):
        messaging.send(_push(), app=fcm_app)
    assert len(sandbox.requests("push")) == 5
    assert sandbox.messages() == []


def test_fcm_message_without_token_is_invalid(
    sandbox: Sandbox, fcm_app: firebase_admin.App
) -> None:
    with pytest.raises(exceptions.InvalidArgumentError) as err:
        messaging.send(messaging.Message(topic="news"), app=fcm_app)
    assert "Recipient of the message is not set." in str(err.value)


def test_fcm_rejects_unknown_bearer_token(sandbox: Sandbox) -> None:
    resp = requests.post(
        sandbox.fcm_url(PROJECT),
        json={"message": {"token": "t"}},
        headers={"Authorization": "Bearer not-issued"},
        timeout=5,
    )

    assert resp.status_code == 401
    assert resp.json()["error"]["status"] == "UNAUTHENTICATED"
    assert sandbox.messages() == []


def test_token_endpoint_rejects_malformed_assertion(sandbox: Sandbox) -> None:
    resp = requests.post(
        sandbox.token_uri,
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": "a.b"},
        timeout=5,
    )

    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_grant"


def test_service_account_file(tmp_path: Path) -> None:
    path = write_service_account(tmp_path / "k" / "sa.json", "http://x/token", "proj")

    info = json.loads(path.read_text())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (info["type"], info["project_id"], info["token_uri"]) == (
        "service_account",
        "proj",
        "http://x/token",
    )
    creds = service_account.Credentials.from_service_account_info(info)
    assert creds.service_account_email == info["client_email"]


# --- latency, waiting, control API ---------------------------------------


def test_latency_applies_per_channel(sandbox: Sandbox, twilio: Client) -> None:
    sandbox.set_latency(80, "sms")

    started = time.monotonic()
    twilio.messages.create(to=TO, from_=FROM, body="slow")
    assert time.monotonic() - started >= 0.08
    assert sandbox.state.script.latency_s("push") == 0


def test_wait_for_concurrent_senders(sandbox: Sandbox, twilio: Client) -> None:
    with ThreadPoolExecutor(8) as pool:
        for i in range(40):
            pool.submit(twilio.messages.create, to=TO, from_=FROM, body=str(i))
        assert len(sandbox.wait_for(40, timeout=10)) == 40
    assert len({m.id for m in sandbox.messages()}) == 40
    with pytest.raises(TimeoutError):
        sandbox.wait_for(41, timeout=0.05)


def test_control_api(sandbox: Sandbox, twilio: Client) -> None:
    control = SandboxClient(sandbox.url)
    assert control.health()["status"] == "ok"

    control.script(
        {
            "queue": {"sms": [{"status": 429, "code": 20429, "retry_after": 3}]},
            "fail_recipients": {"+14155550123": {"code": 21610}},
            "channel_latency_ms": {"push": 5},
        }
    )
    assert control.get_script()["queue"]["sms"][0]["retry_after"] == 3
    with pytest.raises(TwilioRestException):
        twilio.messages.create(to=TO, from_=FROM, body="limited")
    with pytest.raises(TwilioRestException):
        twilio.messages.create(to="+14155550123", from_=FROM, body="sticky")
    twilio.messages.create(to=TO, from_=FROM, body="ok")

    [msg] = control.wait_for(1, timeout=2, channel="sms")
    assert (msg.body, msg.to) == ("ok", TO)
    assert [r.status for r in control.requests("sms")] == [429, 400, 201]
    with pytest.raises(TimeoutError):
        control.wait_for(2, timeout=0.05)
    with pytest.raises(ValueError, match="unknown fault fields"):
        control.queue_errors("push", [{"status": 500, "bogus": 1}])

    control.fail_recipient("+14155550123", None)
    control.set_latency(0)
    control.reset()
    assert control.messages() == [] and control.requests() == []
    assert control.get_script()["fail_recipients"] == {}


def test_stop_closes_keep_alive_connections() -> None:
    sb = Sandbox().start()
    health = f"{sb.url}/_sandbox/health"
    session = requests.Session()
    assert session.get(health, timeout=5).ok
    sb.stop()
    with pytest.raises(requests.ConnectionError):
        session.get(health, timeout=5)
    session.close()


# --- helpers and CLI ------------------------------------------------------


def test_masking_and_segments() -> None:
    assert mask_phone("+14155550100") == "+1415*****00"
    assert mask_token("fcm-token-abcdefghijklmnop") == "fcm-...mnop"
    assert segments("a" * 160) == 1 and segments("a" * 161) == 2
    assert segments("é" * 70) == 1  # é is in GSM-7
    assert segments("ł" * 71) == 2  # ł forces UCS-2


def test_cli_runs_until_sigterm(tmp_path: Path) -> None:
    key = tmp_path / "sa.json"
    with sandbox_cli("--port", "0", "--write-service-account", str(key)) as (proc, url):
        assert proc.stdout is not None
        assert url.startswith("http://127.0.0.1:")
        assert json.loads(key.read_text())["token_uri"] == f"{url}/token"
        resp = requests.post(
            f"{url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
            data={"To": TO, "From": FROM, "Body": "secret"},
            timeout=5,
        )
        assert resp.status_code == 201
        line = proc.stdout.readline()
        assert "+1415*****00" in line and TO not in line and "secret" not in line
        assert line == describe(SandboxClient(url).messages()[0]) + "\n"
