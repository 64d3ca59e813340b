"""Incoming SMS, opt-out keywords, 21610 for opted-out numbers, 21211/21212 for bad ones."""

from __future__ import annotations

import msgspec
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from sandbox import Sandbox, SandboxClient
from sandbox.control.specs import InboundSpec
from sandbox.twilio.inbound import DEFAULT_ACCOUNT_SID
from sandbox.twilio.optouts import keyword_type
from sandbox.twilio.webhooks import DEFAULT_AUTH_TOKEN
from tests.sandbox.helpers import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM,
    TO,
    Receiver,
    SandboxTwilioHttpClient,
)

CUSTOMER = "+14155550177"


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("STOP", "STOP"),
        ("  stop \n", "STOP"),
        ("StopAll", "STOP"),
        *[(w, "STOP") for w in ("unsubscribe", "CANCEL", "end", "Quit", "optout", "REVOKE")],
        ("start", "START"),
        ("UNSTOP", "START"),
        ("Yes", "START"),
        ("help", "HELP"),
        ("INFO", "HELP"),
        ("please stop at the back door", None),  # only a whole body counts
        ("stop!", None),
        ("", None),
        ("STRAẞE", None),
    ],
)
def test_keywords_are_whole_trimmed_case_folded_bodies(body: str, kind: str | None) -> None:
    assert keyword_type(body) == kind


def _inbound_url(receiver: Receiver) -> str:
    return receiver.url("/webhooks/twilio/inbound")


def test_stop_opts_out_and_twilio_then_answers_21610(
    sandbox: Sandbox, twilio: Client, receiver: Receiver
) -> None:
    url = _inbound_url(receiver)

    answer = sandbox.send_inbound(url, CUSTOMER, FROM, " Stop ")

    assert (answer.kind, answer.status, answer.body) == ("inbound", 200, "ok")
    [got] = receiver.wait_for(1)
    assert got.form["MessageSid"].startswith("SM") and len(got.form["MessageSid"]) == 34
    assert {k: got.form[k] for k in ("AccountSid", "From", "To", "Body", "NumMedia")} == {
        "AccountSid": DEFAULT_ACCOUNT_SID,
        "From": CUSTOMER,
        "To": FROM,
        "Body": " Stop ",
        "NumMedia": "0",
    }
    assert "OptOutType" not in got.form  # only Advanced Opt-Out says so
    signature = got.headers["X-Twilio-Signature"]
    assert RequestValidator(DEFAULT_AUTH_TOKEN).validate(url, got.form, signature)
    assert sandbox.opted_out() == [CUSTOMER]
    with pytest.raises(TwilioRestException) as err:
        twilio.messages.create(to=CUSTOMER, from_=FROM, body="still there?")
    assert (err.value.status, err.value.code) == (400, 21610)
    assert err.value.msg.endswith("Attempt to send to unsubscribed recipient")

    sandbox.send_inbound(url, CUSTOMER, FROM, "START")
    assert sandbox.opted_out() == []
    assert twilio.messages.create(to=CUSTOMER, from_=FROM, body="welcome back").sid


def test_advanced_opt_out_sends_the_keyword_type(sandbox: Sandbox, receiver: Receiver) -> None:
    url = _inbound_url(receiver)
    sandbox.send_inbound(url, CUSTOMER, FROM, "quit", advanced_opt_out=True)
    sandbox.send_inbound(url, CUSTOMER, FROM, "help", advanced_opt_out=True)
    sandbox.send_inbound(url, CUSTOMER, FROM, "stop at the back door", advanced_opt_out=True)
    # A custom keyword configured in Advanced Opt-Out: Twilio says STOP though the body isn't.
    sandbox.send_inbound(url, "+14155550188", FROM, "arrêt", opt_out_type="STOP")

    got = receiver.wait_for(4)
    assert [r.form.get("OptOutType") for r in got] == ["STOP", "HELP", None, "STOP"]
    assert sandbox.opted_out() == [CUSTOMER, "+14155550188"]
    with pytest.raises(ValueError, match="opt_out_type"):
        sandbox.send_inbound(url, CUSTOMER, FROM, "x", opt_out_type="PAUSE")


def test_inbound_signature_choices(sandbox: Sandbox, receiver: Receiver) -> None:
    url = _inbound_url(receiver)
    receiver.status = 403  # what the app should answer a bad signature

    mine = sandbox.send_inbound(url, CUSTOMER, FROM, "hi", auth_token=AUTH_TOKEN)
    forged = sandbox.send_inbound(url, CUSTOMER, FROM, "hi", signature="forged")
    bare = sandbox.send_inbound(url, CUSTOMER, FROM, "hi", signature="missing")

    valid, bad, unsigned = receiver.wait_for(3)
    assert RequestValidator(AUTH_TOKEN).validate(url, valid.form, mine.signature)
    assert not RequestValidator(DEFAULT_AUTH_TOKEN).validate(
        url, bad.form, bad.headers["X-Twilio-Signature"]
    )
    assert "X-Twilio-Signature" not in unsigned.headers and bare.signature is None
    assert [d.status for d in (mine, forged, bare)] == [403, 403, 403]
    assert [d.kind for d in sandbox.webhooks()] == ["inbound"] * 3


def test_opted_out_numbers_are_settable(receiver: Receiver) -> None:
    with Sandbox(opted_out=[CUSTOMER]) as sb:
        client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=SandboxTwilioHttpClient(sb.url))
        with pytest.raises(TwilioRestException) as err:
            client.messages.create(to=CUSTOMER, from_=FROM, body="x")
        assert err.value.code == 21610
        assert sb.messages() == [] and sb.requests()[0].error == "21610"
        sb.opt_in(CUSTOMER)
        assert client.messages.create(to=CUSTOMER, from_=FROM, body="x").sid
        sb.opt_out(TO)
        sb.reset()  # back to the constructor's set
        assert sb.opted_out() == [CUSTOMER]
        client.http_client.session.close()


def test_control_api_for_optouts_and_inbound(sandbox: Sandbox, receiver: Receiver) -> None:
    control = SandboxClient(sandbox.url)
    control.opt_out(TO)
    assert control.opted_out() == [TO]
    control.opt_in(TO)

    answer = control.send_inbound(
        _inbound_url(receiver), CUSTOMER, FROM, "STOP", advanced_opt_out=True
    )

    assert (answer.status, answer.params["OptOutType"]) == (200, "STOP")
    assert control.opted_out() == [CUSTOMER]
    assert [d.kind for d in control.wait_for_webhooks(1, kind="inbound")] == ["inbound"]
    with pytest.raises(ValueError, match="required"):
        control.send_inbound("", CUSTOMER, FROM, "x")


def test_an_inbound_spec_is_one_value_in_process_and_over_http(
    sandbox: Sandbox, receiver: Receiver
) -> None:
    spec = InboundSpec(url=_inbound_url(receiver), from_=CUSTOMER, to=FROM, body="help",
                       advanced_opt_out=True, messaging_service_sid="MG" + "1" * 32)  # fmt: skip
    wire = msgspec.json.encode(spec)
    assert b'"from":' in wire and b"signature" not in wire  # Twilio's name; defaults left out
    assert msgspec.json.decode(wire, type=InboundSpec) == spec

    answers = [sandbox.deliver_inbound(spec), SandboxClient(sandbox.url).deliver_inbound(spec)]

    first, second = receiver.wait_for(2)
    assert [d.params["OptOutType"] for d in answers] == ["HELP", "HELP"]
    drop = {"MessageSid", "SmsMessageSid", "SmsSid"}  # new for each message
    assert {k: v for k, v in first.form.items() if k not in drop} == {
        k: v for k, v in second.form.items() if k not in drop
    }


def test_the_control_api_refuses_what_no_spec_has(sandbox: Sandbox) -> None:
    control = SandboxClient(sandbox.url)
    spec = {"url": "http://127.0.0.1:9/", "from": CUSTOMER, "to": FROM, "colour": "red"}
    with pytest.raises(ValueError, match="colour"):
        control._call("POST", "sms/inbound", body=spec)
    with pytest.raises(ValueError, match="repeat must be >= 1"):
        control._call("POST", "sms/callback", body={"sid": "SM1", "repeat": 0})
    with pytest.raises(ValueError, match="int"):
        control._call("POST", "sms/callback", body={"sid": "SM1", "error_code": "30003"})


@pytest.mark.parametrize("to", ["+19999999999", "+1415555", "+4400000", "14155550100"])
def test_numbers_that_are_not_real_are_21211(twilio: Client, to: str) -> None:
    with pytest.raises(TwilioRestException) as err:
        twilio.messages.create(to=to, from_=FROM, body="x")
    assert (err.value.status, err.value.code) == (400, 21211)


@pytest.mark.parametrize("sender", ["ACME", "12345", "+442079460958"])
def test_senders_twilio_accepts(twilio: Client, sender: str) -> None:
    assert twilio.messages.create(to=TO, from_=sender, body="x").sid


@pytest.mark.parametrize("sender", ["+1", "not a sender!", "Toolongsenderid"])
def test_senders_that_are_not_valid_are_21212(twilio: Client, sender: str) -> None:
    with pytest.raises(TwilioRestException) as err:
        twilio.messages.create(to=TO, from_=sender, body="x")
    assert (err.value.status, err.value.code) == (400, 21212)
    assert sender in err.value.msg
