"""Status callbacks: real signed POSTs to a local receiver, automatic and on demand."""

from __future__ import annotations

from typing import Any

import pytest
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from sandbox import Sandbox, SandboxClient
from sandbox.twilio.webhooks import DEFAULT_AUTH_TOKEN, sign
from tests.sandbox.helpers import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM,
    TO,
    Received,
    Receiver,
    SandboxTwilioHttpClient,
)


def _valid(token: str, url: str, got: Received) -> bool:
    signature = got.headers.get("X-Twilio-Signature", "")
    return bool(RequestValidator(token).validate(url, got.form, signature))


def test_sent_then_delivered_signed_with_the_accounts_token(
    sandbox: Sandbox, twilio: Client, receiver: Receiver
) -> None:
    url = receiver.url()
    sid = twilio.messages.create(to=TO, from_=FROM, body="hi", status_callback=url).sid

    sent, delivered = receiver.wait_for(2)

    assert [sent.form["MessageStatus"], delivered.form["MessageStatus"]] == ["sent", "delivered"]
    assert sent.form == {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "From": FROM,
        "MessageSid": sid,
        "MessageStatus": "sent",
        "SmsSid": sid,
        "SmsStatus": "sent",
        "To": TO,
    }
    assert "ErrorCode" not in delivered.form and len(delivered.form["RawDlrDoneDate"]) == 10
    # Signed with the auth token the message was created with, over the URL as given.
    assert _valid(AUTH_TOKEN, url, sent) and _valid(AUTH_TOKEN, url, delivered)
    assert not _valid("another-token", url, sent)
    assert sent.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    tokens = {r.headers["I-Twilio-Idempotency-Token"] for r in (sent, delivered)}
    assert len(tokens) == 2  # one per callback
    log = sandbox.wait_for_webhooks(2, kind="status")
    assert [(d.status, d.body, d.signature_mode) for d in log] == [(200, "ok", "valid")] * 2


def test_undelivered_and_failed_carry_the_error_code(
    sandbox: Sandbox, twilio: Client, receiver: Receiver
) -> None:
    sandbox.set_sms_outcome(TO, "undelivered", 30005)
    sandbox.set_sms_outcome("+14155550122", "failed", 30007)
    url = receiver.url()
    twilio.messages.create(to=TO, from_=FROM, body="a", status_callback=url)
    sent, undelivered = receiver.wait_for(2)
    twilio.messages.create(to="+14155550122", from_=FROM, body="b", status_callback=url)
    failed = receiver.wait_for(3)[2]

    assert (sent.form["MessageStatus"], undelivered.form["MessageStatus"]) == (
        "sent",
        "undelivered",
    )
    assert undelivered.form["ErrorCode"] == "30005"
    # A failed message was never sent: no `sent` callback before it.
    assert (failed.form["MessageStatus"], failed.form["ErrorCode"]) == ("failed", "30007")


def test_no_status_callback_no_webhook(sandbox: Sandbox, twilio: Client) -> None:
    sid = twilio.messages.create(to=TO, from_=FROM, body="quiet").sid

    sandbox.wait_for_status(sid, "delivered")
    assert sandbox.webhooks() == []


@pytest.mark.parametrize(
    ("options", "token"),
    [
        ({"twilio_auth": (ACCOUNT_SID, AUTH_TOKEN)}, AUTH_TOKEN),
        ({"webhook_auth_token": "set-by-test"}, "set-by-test"),
    ],
    ids=["enforced-credentials", "explicit-token"],
)
def test_signing_token_choices(receiver: Receiver, options: dict[str, Any], token: str) -> None:
    with Sandbox(**options) as sb:
        client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=SandboxTwilioHttpClient(sb.url))
        client.messages.create(to=TO, from_=FROM, body="x", status_callback=receiver.url())
        client.http_client.session.close()
        [sent, _] = receiver.wait_for(2)
    assert _valid(token, receiver.url(), sent)


def test_api_key_credentials_fall_back_to_the_default_token(
    sandbox: Sandbox, receiver: Receiver
) -> None:
    # An API key's secret is not the auth token Twilio signs with.
    key = Client(
        "SK" + "2" * 32,
        "key-secret",
        ACCOUNT_SID,
        http_client=SandboxTwilioHttpClient(sandbox.url),
    )
    key.messages.create(to=TO, from_=FROM, body="x", status_callback=receiver.url())
    key.http_client.session.close()

    [sent, _] = receiver.wait_for(2)
    assert _valid(DEFAULT_AUTH_TOKEN, receiver.url(), sent)
    sandbox.set_webhook_auth_token("later")
    sid = sandbox.messages()[0].id
    [again] = sandbox.send_status_callback(sid)
    assert again.signature == sign("later", receiver.url(), again.params)


def test_on_demand_duplicate_out_of_order_and_forged(
    sandbox: Sandbox, twilio: Client, receiver: Receiver
) -> None:
    sandbox.set_sms_rate(0)  # held: still queued, no automatic callbacks yet
    url = receiver.url()
    sid = twilio.messages.create(to=TO, from_=FROM, body="x", status_callback=url).sid

    twice = sandbox.send_status_callback(sid, "delivered", repeat=2)
    late = sandbox.send_status_callback(sid, "sent")
    forged = sandbox.send_status_callback(sid, "delivered", signature="forged")
    unsigned = sandbox.send_status_callback(sid, "undelivered", signature="missing")

    got = receiver.wait_for(5)
    assert [r.form["MessageStatus"] for r in got] == [
        "delivered",
        "delivered",
        "sent",
        "delivered",
        "undelivered",
    ]
    assert got[0].form == got[1].form
    first, second = (r.headers["I-Twilio-Idempotency-Token"] for r in got[:2])
    assert first == second == twice[0].idempotency_token  # a retry, not a new event
    assert [_valid(AUTH_TOKEN, url, r) for r in got[:3]] == [True, True, True]
    assert not _valid(AUTH_TOKEN, url, got[3])
    assert "X-Twilio-Signature" not in got[4].headers
    assert got[4].form["ErrorCode"] == "30003"
    assert [d.signature_mode for d in (*twice, *late, *forged, *unsigned)] == [
        "valid",
        "valid",
        "valid",
        "forged",
        "missing",
    ]
    assert twilio.messages(sid).fetch().status == "queued"  # the message itself is untouched


def test_on_demand_to_another_url_and_errors(
    sandbox: Sandbox, twilio: Client, receiver: Receiver
) -> None:
    sid = twilio.messages.create(to=TO, from_=FROM, body="x").sid
    receiver.status = 403

    [answer] = sandbox.send_status_callback(sid, "delivered", url=receiver.url("/other"))

    assert (answer.status, answer.body, receiver.wait_for(1)[0].path) == (403, "ok", "/other")
    with pytest.raises(ValueError, match="no StatusCallback"):
        sandbox.send_status_callback(sid)
    with pytest.raises(ValueError, match="no SMS"):
        sandbox.send_status_callback("SM" + "0" * 32, url=receiver.url())
    with pytest.raises(ValueError, match="signature"):
        sandbox.send_status_callback(sid, url=receiver.url(), signature="bogus")


def test_unreachable_endpoint_is_logged(sandbox: Sandbox, twilio: Client) -> None:
    closed = Receiver()
    url = closed.url()
    closed.close()
    sid = twilio.messages.create(to=TO, from_=FROM, body="x", status_callback=url).sid

    sandbox.wait_for_status(sid, "delivered")
    sent, delivered = sandbox.wait_for_webhooks(2)
    assert (sent.status, delivered.status) == (None, None)
    assert sent.error is not None and "refused" in sent.error.lower()


def test_control_api_for_callbacks(sandbox: Sandbox, twilio: Client, receiver: Receiver) -> None:
    control = SandboxClient(sandbox.url)
    url = receiver.url()
    sid = twilio.messages.create(to=TO, from_=FROM, body="x", status_callback=url).sid
    control.wait_for_webhooks(2, kind="status")

    [dup1, dup2] = control.send_status_callback(sid, "delivered", repeat=2, idempotency_token="t1")
    assert dup1.idempotency_token == dup2.idempotency_token == "t1"
    [forged] = control.send_status_callback(sid, "sent", signature="forged")
    assert not _valid(AUTH_TOKEN, url, receiver.wait_for(5)[4])
    assert forged.signature_mode == "forged"
    assert len(control.webhooks("status")) == 5
    control.set_webhook_auth_token("via-control")
    [resigned] = control.send_status_callback(sid)
    assert resigned.signature == sign("via-control", url, resigned.params)
    with pytest.raises(ValueError):
        control.send_status_callback(sid, repeat=0)
    with pytest.raises(TimeoutError):
        control.wait_for_webhooks(99, timeout=0.05)
    control.reset()
    assert control.webhooks() == []
    assert sandbox.state.callbacks.signing_token() == DEFAULT_AUTH_TOKEN  # the set one: gone
