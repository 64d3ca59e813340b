"""Connection faults: answers lost, late or reset, and a host that refuses connections."""

from __future__ import annotations

import time
from collections.abc import Callable

import firebase_admin
import pytest
import requests
from firebase_admin import messaging
from twilio.rest import Client

from sandbox import Fault, Sandbox, SandboxClient
from sandbox.google.identifiers import installation_id
from tests.sandbox.helpers import FROM, TO, twilio_client


def _eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.02)


def test_dropped_answer_still_creates_the_message(sandbox: Sandbox, twilio: Client) -> None:
    sandbox.queue_errors("sms", [{"action": "drop"}])

    with pytest.raises(requests.ConnectionError, match="without response"):
        twilio.messages.create(to=TO, from_=FROM, body="lost answer")

    [message] = sandbox.messages("sms")
    assert message.body == "lost answer"
    sandbox.wait_for_status(message.id, "delivered")  # Twilio went on and sent it
    [logged] = sandbox.requests("sms")
    assert (logged.status, logged.error) == (201, "drop")
    assert twilio.messages.create(to=TO, from_=FROM, body="next").sid  # queue used up


def test_drop_for_one_recipient_every_time(sandbox: Sandbox, twilio: Client) -> None:
    flaky = "+14155550123"
    sandbox.fail_recipient(flaky, {"action": "drop"})

    for _ in range(2):
        with pytest.raises(requests.ConnectionError):
            twilio.messages.create(to=flaky, from_=FROM, body="x")
    assert twilio.messages.create(to=TO, from_=FROM, body="y").sid
    assert [m.to for m in sandbox.messages()] == [flaky, flaky, TO]


def test_a_dropped_invalid_request_is_still_not_created(sandbox: Sandbox, twilio: Client) -> None:
    sandbox.queue_errors("sms", [{"action": "drop"}])

    with pytest.raises(requests.ConnectionError):
        twilio.messages.create(to="12345", from_=FROM, body="x")
    assert sandbox.messages() == []
    assert [(r.status, r.error) for r in sandbox.requests()] == [(400, "21211")]


def test_answer_later_than_the_read_timeout(sandbox: Sandbox) -> None:
    impatient = twilio_client(sandbox, timeout=0.3)
    sandbox.queue_errors("sms", [{"action": "timeout", "delay_s": 5}])

    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        impatient.messages.create(to=TO, from_=FROM, body="slow")
    assert time.monotonic() - started < 5

    [message] = sandbox.messages("sms")  # created before the late answer
    assert message.body == "slow"
    impatient.http_client.session.close()
    sandbox.stop()  # does not wait out the 5 s


def test_reset_creates_nothing(sandbox: Sandbox, twilio: Client) -> None:
    sandbox.storm("sms", 2, {"action": "reset"})

    for _ in range(2):
        with pytest.raises(requests.ConnectionError, match="reset"):
            twilio.messages.create(to=TO, from_=FROM, body="x")
    assert sandbox.messages() == []
    assert [(r.status, r.error) for r in sandbox.requests()] == [(0, "reset")] * 2
    assert twilio.messages.create(to=TO, from_=FROM, body="y").sid


def test_sdk_retries_a_dropped_push_so_it_arrives_twice(
    sandbox: Sandbox, fcm_app: firebase_admin.App
) -> None:
    sandbox.queue_errors("push", [{"action": "drop"}])
    # firebase-admin's Retry(read=1, allowed_methods=None) resends the POST.
    name = messaging.send(messaging.Message(fid=installation_id("a")), app=fcm_app)

    assert [m.id for m in sandbox.messages("push")][-1] == name
    assert len(sandbox.messages("push")) == 2  # the device gets it twice
    assert [r.error for r in sandbox.requests("push")] == ["drop", None]


def test_refused_connections_then_listening_again(sandbox: Sandbox) -> None:
    health = f"{sandbox.url}/_sandbox/health"
    session = requests.Session()
    assert session.get(health, timeout=5).ok  # a kept-alive connection

    sandbox.refuse_connections(0.5)

    with pytest.raises(requests.ConnectionError):
        session.get(health, timeout=5)  # the open connection was closed
    with pytest.raises(requests.ConnectionError, match="refused"):
        requests.get(health, timeout=5)
    _eventually(lambda: _answers(health))  # same URL, listening again
    session.close()


def test_refuse_through_the_control_api(sandbox: Sandbox) -> None:
    control = SandboxClient(sandbox.url)
    health = f"{sandbox.url}/_sandbox/health"

    control.refuse_connections(0.5)  # answered before the sandbox stops listening

    with pytest.raises(requests.ConnectionError, match="refused"):
        requests.get(health, timeout=5)
    _eventually(lambda: _answers(health))
    with pytest.raises(ValueError):
        control.refuse_connections(-1)


def test_stop_while_refusing(sandbox: Sandbox) -> None:
    sandbox.refuse_connections(30)
    sandbox.stop()  # cancels the pending re-listen


def test_connection_faults_in_the_script_format(sandbox: Sandbox) -> None:
    control = SandboxClient(sandbox.url)
    control.queue_errors("sms", [{"action": "timeout"}, Fault.connection("reset")])

    assert control.get_script()["queue"]["sms"] == [
        {"action": "timeout", "delay_s": 30.0},
        {"action": "reset", "delay_s": None},
    ]
    with pytest.raises(ValueError, match="unknown fault action"):
        control.queue_errors("sms", [{"action": "explode"}])
    with pytest.raises(ValueError):
        Fault.from_json({"action": "timeout", "delay_s": -1})


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.ConnectionError:
        return False
