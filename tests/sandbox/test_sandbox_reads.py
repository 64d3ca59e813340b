"""Faults on Twilio reads (GET a Message, GET the list): a rate-limited lookup, through the
real SDK, while sends go through."""

from __future__ import annotations

import json

import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from sandbox import Sandbox, SandboxClient
from tests.sandbox.helpers import FROM, TO, SandboxTwilioHttpClient

RATE_LIMITED = {"code": 20429, "retry_after": 2}


def _last_answer(client: Client) -> tuple[dict[str, object], str | None]:
    http = client.http_client
    assert isinstance(http, SandboxTwilioHttpClient) and http.last_response is not None
    return json.loads(http.last_response.text), http.last_response.headers.get("Retry-After")


def test_reads_get_429_with_retry_after_until_cleared_while_sends_go_through(
    sandbox: Sandbox, twilio: Client
) -> None:
    sid = twilio.messages.create(to=TO, from_=FROM, body="hi").sid
    sandbox.fail_sms_reads(RATE_LIMITED)

    for _ in range(2):  # sticky: not used up by the first read
        with pytest.raises(TwilioRestException) as err:
            twilio.messages(sid).fetch()
        assert (err.value.status, err.value.code) == (429, 20429)
    assert _last_answer(twilio) == (
        {
            "code": 20429,
            "message": "Too Many Requests",
            "more_info": "https://www.twilio.com/docs/errors/20429",
            "status": 429,
        },
        "2",
    )
    # The SDK raises a plain TwilioException for a list page it could not get.
    with pytest.raises(TwilioException, match="Unable to fetch page"):
        twilio.messages.list(to=TO)
    assert _last_answer(twilio)[0]["status"] == 429
    # Creates are not reads: a send still goes through and its lifecycle goes on.
    other = twilio.messages.create(to=TO, from_=FROM, body="again").sid
    sandbox.wait_for_status(other, "delivered")

    sandbox.fail_sms_reads(None)
    fetched = twilio.messages(sid).fetch()
    assert (fetched.sid, fetched.status) == (sid, "delivered")
    assert [(r.method, r.status, r.error, r.recipient) for r in sandbox.requests("sms")] == [
        ("POST", 201, None, TO),
        ("GET", 429, "20429", None),
        ("GET", 429, "20429", None),
        ("GET", 429, "20429", None),
        ("POST", 201, None, TO),
        ("GET", 200, None, TO),
    ]


def test_an_unknown_sid_is_still_404_and_logged_once_reads_are_answered(
    sandbox: Sandbox, twilio: Client
) -> None:
    with pytest.raises(TwilioRestException) as err:
        twilio.messages("SM" + "f" * 32).fetch()
    assert (err.value.status, err.value.code) == (404, 20404)
    assert [(r.method, r.status, r.error) for r in sandbox.requests("sms")] == [
        ("GET", 404, "20404")
    ]


def test_a_read_can_be_reset_on_the_connection(sandbox: Sandbox, twilio: Client) -> None:
    sid = twilio.messages.create(to=TO, from_=FROM, body="hi").sid
    sandbox.fail_sms_reads({"action": "reset"})

    with pytest.raises(requests.ConnectionError):
        twilio.messages(sid).fetch()
    assert [(r.method, r.status, r.error) for r in sandbox.requests("sms")][-1] == (
        "GET",
        0,
        "reset",
    )


def test_read_faults_through_the_control_api_and_reset(sandbox: Sandbox, twilio: Client) -> None:
    control = SandboxClient(sandbox.url)
    sid = twilio.messages.create(to=TO, from_=FROM, body="hi").sid

    control.fail_sms_reads(RATE_LIMITED)
    assert control.get_script()["fail_sms_reads"] == {
        "status": 429,
        "code": 20429,
        "retry_after": 2,
    }
    control.script({"latency_ms": 0})  # a script without the key leaves the fault on
    with pytest.raises(TwilioRestException):
        twilio.messages(sid).fetch()
    control.script({"fail_sms_reads": None})
    assert twilio.messages(sid).fetch().sid == sid
    with pytest.raises(ValueError, match="unknown fault fields"):
        control.fail_sms_reads({"status": 429, "bogus": 1})

    control.fail_sms_reads({"status": 503})
    control.reset()
    assert control.get_script()["fail_sms_reads"] is None
