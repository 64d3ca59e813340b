"""The SMS lifecycle: queued -> sending -> sent -> delivered, per-sender drain, outcomes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from twilio.rest import Client

from sandbox import RecordedMessage, Sandbox, SandboxClient
from sandbox.twilio.lifecycle import TransitionError, advance, reached
from tests.sandbox.helpers import (
    FROM,
    TO,
    sandbox_cli,
)

SERVICE = "MG" + "1" * 32
OTHER_FROM = "+15005550007"


def test_a_message_is_created_queued_then_sent_then_delivered(
    sandbox: Sandbox, twilio: Client
) -> None:
    created = twilio.messages.create(to=TO, from_=FROM, body="hi")

    assert (created.status, created.date_sent, created.price) == ("queued", None, None)
    sandbox.wait_for_status(created.sid, "delivered")
    fetched = twilio.messages(created.sid).fetch()
    assert (fetched.status, fetched.error_code) == ("delivered", None)
    assert fetched.date_sent is not None and fetched.date_sent >= created.date_created
    assert fetched.price == "-0.00790"
    [recorded] = sandbox.messages("sms")
    assert (recorded.status, recorded.response["status"]) == ("delivered", "delivered")


def test_messaging_service_message_starts_accepted(sandbox: Sandbox, twilio: Client) -> None:
    sandbox.set_sms_rate(0)
    created = twilio.messages.create(to=TO, messaging_service_sid=SERVICE, body="x")

    assert created.status == "accepted"
    # The service picks a sender at once; the message then waits its turn, queued.
    assert sandbox.wait_for_status(created.sid, "queued").status == "queued"
    assert sandbox.release() == 1
    sandbox.wait_for_status(created.sid, "delivered")


def test_rate_zero_holds_messages_queued_until_released(sandbox: Sandbox, twilio: Client) -> None:
    sandbox.set_sms_rate(0)
    sids = [twilio.messages.create(to=TO, from_=FROM, body=f"m{i}").sid for i in range(3)]

    assert sandbox.state.outbox.held() == 3
    held = twilio.messages(sids[0]).fetch()
    assert (held.status, held.date_sent) == ("queued", None)
    today = datetime.now(UTC)
    assert twilio.messages.list(date_sent=today) == []  # not sent: no date_sent to match

    assert sandbox.release(count=1) == 1
    sandbox.wait_for_status(sids[0], "delivered")
    assert [twilio.messages(s).fetch().status for s in sids[1:]] == ["queued", "queued"]
    assert [m.sid for m in twilio.messages.list(date_sent_after=today)] == [sids[0]]

    sandbox.set_sms_rate(None)  # raising the rate drains what was held
    for sid in sids[1:]:
        sandbox.wait_for_status(sid, "delivered")
    assert sandbox.state.outbox.held() == 0


def test_each_sender_drains_at_its_own_rate(sandbox: Sandbox, twilio: Client) -> None:
    sandbox.set_sms_rate(1, FROM)  # one message a second from FROM
    first, second = (twilio.messages.create(to=TO, from_=FROM, body=b).sid for b in "ab")
    other = twilio.messages.create(to=TO, from_=OTHER_FROM, body="c").sid

    sandbox.wait_for_status(first, "sent")
    sandbox.wait_for_status(other, "sent")  # another sender is not behind FROM's queue
    assert twilio.messages(second).fetch().status == "queued"
    sandbox.wait_for_status(second, "sent", timeout=10)


def test_outcomes_per_recipient(sandbox: Sandbox, twilio: Client) -> None:
    lost, landline = "+14155550111", "+14155550122"
    sandbox.set_sms_outcome(lost, "undelivered", 30005)
    sandbox.set_sms_outcome(landline, "failed")

    undelivered = twilio.messages.create(to=lost, from_=FROM, body="x").sid
    failed = twilio.messages.create(to=landline, from_=FROM, body="x").sid

    u = sandbox.wait_for_status(undelivered, "undelivered").response
    assert (u["error_code"], u["error_message"]) == (30005, "Unknown destination handset")
    assert u["date_sent"] is not None  # it was sent; the carrier could not deliver it
    f = sandbox.wait_for_status(failed, "failed").response
    assert (f["error_code"], f["date_sent"]) == (30008, None)  # never sent
    sandbox.set_sms_outcome(lost, None)
    again = twilio.messages.create(to=lost, from_=FROM, body="y").sid
    assert sandbox.wait_for_status(again, "delivered").response["error_code"] is None


def test_delivery_delay_separates_sent_from_delivered(sandbox: Sandbox, twilio: Client) -> None:
    sandbox.set_delivery_delay(30)
    sid = twilio.messages.create(to=TO, from_=FROM, body="x").sid

    sandbox.wait_for_status(sid, "sent")
    assert twilio.messages(sid).fetch().status == "sent"
    sandbox.reset()  # also forgets the pending receipt
    assert sandbox.state.outbox.to_json()["delivery_delay_s"] == 0.0


def test_constructor_options() -> None:
    with Sandbox(sms_rate=0, delivery_delay_s=1.5) as sb:
        config = sb.state.outbox.to_json()
        assert (config["rate"], config["delivery_delay_s"]) == (0, 1.5)
        sb.set_sms_rate(3)
        sb.reset()
        assert sb.state.outbox.to_json()["rate"] == 0  # back to the constructor's


def test_bad_settings_are_refused(sandbox: Sandbox) -> None:
    with pytest.raises(ValueError):
        sandbox.set_sms_rate(-1)
    with pytest.raises(ValueError):
        sandbox.set_sms_outcome(TO, "lost")
    with pytest.raises(ValueError):
        sandbox.set_sms_outcome(TO, "delivered", 30003)
    with pytest.raises(ValueError):
        sandbox.set_delivery_delay(-0.1)


def test_control_api_drives_the_lifecycle(sandbox: Sandbox, twilio: Client) -> None:
    control = SandboxClient(sandbox.url)
    control.set_sms_rate(0)
    control.set_sms_outcome(TO, "undelivered", 30003)
    sid = twilio.messages.create(to=TO, from_=FROM, body="x").sid

    assert control.sms_config()["held"] == {FROM: 1}
    with pytest.raises(TimeoutError):
        control.wait_for_status(sid, "sent", timeout=0.05)
    assert control.release(FROM) == 1
    message = control.wait_for_status(sid, "undelivered", timeout=5)
    assert (message.status, message.response["error_code"]) == ("undelivered", 30003)
    assert control.messages()[0].status == "undelivered"

    control.set_delivery_delay(0.5)
    control.set_sms_rate(2, FROM)
    config = control.sms_config()
    assert (config["delivery_delay_s"], config["sender_rates"]) == (0.5, {FROM: 2})
    with pytest.raises(ValueError, match="outcome"):
        control.set_sms_outcome(TO, "vanished")
    control.set_sms_outcome(TO, None)
    control.reset()
    assert control.sms_config()["outcomes"] == {}


def test_status_machine_only_moves_forward() -> None:
    resource = {"sid": "SM1", "status": "delivered", "body": "x"}

    with pytest.raises(TransitionError):
        advance(resource, "sent", 0.0)
    with pytest.raises(TransitionError):
        advance({**resource, "status": "queued"}, "delivered", 0.0)
    assert reached("delivered", "sent") and reached("undelivered", "queued")
    assert not reached("failed", "sent") and not reached("sent", "delivered")
    assert not reached("delivered", "undelivered")


def test_cli_takes_the_new_options() -> None:
    args = ["--port", "0", "--sms-rate", "0", "--delivery-delay", "2.5"]
    args += ["--opted-out", TO, "--opted-out", OTHER_FROM, "--webhook-auth-token", "t"]
    with sandbox_cli(*args) as (_, url):
        control = SandboxClient(url)
        config = control.sms_config()
        assert (config["rate"], config["delivery_delay_s"]) == (0, 2.5)
        assert control.opted_out() == sorted([TO, OTHER_FROM])


def test_records_without_status_still_load() -> None:
    # JSON from a sandbox that predates `status` has no such key.
    old = RecordedMessage.from_json(
        {"channel": "sms", "id": "SM1", "to": TO, "sender": FROM, "body": "x"}
    )
    assert old.status is None


def test_a_message_left_queued_expires_or_overflows_with_a_late_failed_status(
    sandbox: Sandbox, twilio: Client
) -> None:
    sandbox.set_sms_rate(0)
    sandbox.set_max_queue(5.0)
    short = twilio.messages.create(to=TO, from_=FROM, body="soon", validity_period=1)
    sandbox.set_max_queue(0.5)
    long = twilio.messages.create(to=TO, from_=FROM, body="later", validity_period=600)
    assert sandbox.wait_for_status(short.sid, "failed", 10).response["error_code"] == 30036
    assert sandbox.wait_for_status(long.sid, "failed", 10).response["error_code"] == 30001
    assert sandbox.release() == 0  # nothing of them is left to send


def test_an_opted_out_number_fails_late_through_a_messaging_service(
    sandbox: Sandbox, twilio: Client
) -> None:
    sandbox.opt_out(TO)
    created = twilio.messages.create(to=TO, messaging_service_sid="MG" + "1" * 32, body="hi")
    assert created.status == "accepted"
    failed = sandbox.wait_for_status(created.sid, "failed", 10)
    assert failed.response["error_code"] == 21610
