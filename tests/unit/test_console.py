"""The console's pure parts: users and roles, sign-in throttling, what a search means, the
why-not record, explanations and timelines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from console import auth, explain, search, timeline, users
from console.queries import Detail
from consumer.decisions import decide
from rules.ruleset import load_text
from schemas import Channel, Event, NewNotification, Status

AT = datetime(2026, 5, 3, 12, 0, tzinfo=UTC)


def test_add_user_writes_an_argon2id_hash_that_verifies(tmp_path: Path) -> None:
    path = tmp_path / "users"
    assert users.add(str(path), "ann", users.Role.SUPPORT, "s3cret-pass")
    assert not users.add(str(path), "ann", users.Role.OPERATOR, "other-pass")
    line = path.read_text().strip()
    assert line.startswith("ann:operator:$argon2id$")
    assert path.stat().st_mode & 0o777 == 0o600
    loaded = users.load(str(path))
    assert users.verify(loaded["ann"], "other-pass")
    assert not users.verify(loaded["ann"], "s3cret-pass")
    assert not users.verify(None, "other-pass")


def test_roles_are_ordered_and_parsed() -> None:
    assert users.Role.VIEWER < users.Role.SUPPORT < users.Role.OPERATOR
    assert users.Role.parse("Operator") is users.Role.OPERATOR
    with pytest.raises(users.UsersError):
        users.Role.parse("admin")


@pytest.mark.parametrize("text", ["ann:viewer", "bad name:viewer:$x", "ann:root:$argon2id$x"])
def test_a_broken_users_line_is_refused_with_its_line(text: str) -> None:
    with pytest.raises(users.UsersError, match="users:1"):
        users.parse(text, "users")


def test_short_passwords_and_odd_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(users.UsersError):
        users.add(str(tmp_path / "u"), "ann", users.Role.VIEWER, "short")
    with pytest.raises(users.UsersError):
        users.add(str(tmp_path / "u"), "a:b", users.Role.VIEWER, "long enough")


def test_sign_ins_wait_longer_after_each_failure_and_reset_on_success() -> None:
    now = [100.0]
    throttle = auth.SignInThrottle(clock=lambda: now[0])
    for _ in range(auth.FREE_FAILURES):
        assert throttle.wait("ann") == 0
        throttle.failed("ann")
    assert throttle.wait("ann") == pytest.approx(1.0)
    throttle.failed("ann")
    assert throttle.wait("ann") == pytest.approx(2.0)
    assert throttle.wait("bob") == 0
    now[0] += 2.0
    assert throttle.wait("ann") == 0
    throttle.succeeded("ann")
    throttle.failed("ann")
    assert throttle.wait("ann") == 0


def test_the_wait_is_bounded() -> None:
    throttle = auth.SignInThrottle(clock=lambda: 0.0)
    for _ in range(50):
        throttle.failed("ann")
    assert throttle.wait("ann") == auth.MAX_WAIT_SECONDS


def test_basic_credentials() -> None:
    assert auth.basic_credentials("Basic YW5uOnA6dw==") == ("ann", "p:w")
    assert auth.basic_credentials("Basic !!!") is None
    assert auth.basic_credentials("Bearer x") is None
    assert auth.basic_credentials(None) is None


def test_csrf_tokens_must_match_the_session() -> None:
    _, session = auth.Sessions().new()
    assert auth.csrf_ok(session, session.csrf)
    assert not auth.csrf_ok(session, "x" + session.csrf)
    assert not auth.csrf_ok(session, None)
    assert not auth.csrf_ok(None, session.csrf)


def test_sessions_expire_when_idle() -> None:
    sessions = auth.Sessions(lifetime=-1)
    sid, _ = sessions.new()
    assert sessions.get(sid) is None


@pytest.mark.parametrize(
    "typed", ["(415) 555-0100", "415 555 0100", "415-555-0100", "+1 415 555 0100", "4155550100"]
)
def test_a_number_as_a_person_types_it_is_looked_up_in_e164(typed: str) -> None:
    found = search.lookups(typed, "US")
    assert found[0] == search.Lookup(search.Field.RECIPIENT, "+14155550100")


def test_a_subject_is_not_taken_for_a_number() -> None:
    found = search.lookups("SHP-4155550100", "US")
    assert search.Lookup(search.Field.SUBJECT, "SHP-4155550100") in found
    assert all(not (f.field is search.Field.RECIPIENT and f.value.startswith("+")) for f in found)


def test_digits_may_be_a_notification_id_too() -> None:
    fields = {f.field for f in search.lookups("42", "US")}
    assert search.Field.ID in fields and search.Field.EVENT_ID in fields
    assert search.lookups("  ", "US") == []


RULES = """
rules:
  - {name: a, on: t.x, when: "data.n > 1", channel: sms, to: "{{ data.to }}", body: hi}
  - {name: b, on: t.x, channel: sms, to: "{{ data.to }}", body: hi}
"""


def _event(event_type: str = "t.x") -> Event:
    return Event(id="e1", type=event_type, data={}, time=AT)


def _row(rule: str) -> NewNotification:
    return NewNotification(
        idempotency_key=rule,
        event_id="e1",
        event_type="t.x",
        event_subject=None,
        rule=rule,
        channel=Channel.SMS,
        recipient="+14155550100",
        body="hi",
        status=Status.PENDING,
    )


def test_decisions_are_kept_only_when_the_rows_do_not_tell() -> None:
    rules = load_text(RULES)
    matched = rules.matching("t.x")
    assert decide(_event(), matched, [_row("a"), _row("b")], "v1") is None
    record = decide(_event(), matched, [_row("b")], "v1")
    assert record is not None and record[5:] == (["a", "b"], ["b"])
    nobody = decide(_event("t.other"), rules.matching("t.other"), [], "v1")
    assert nobody is not None and nobody[5] == []
    one = load_text(RULES.split("\n  - {name: b", maxsplit=1)[0] + "\n")
    assert decide(_event(), one.matching("t.x"), [_row("a")], "v1") is None


def _detail(**changes: object) -> Detail:
    row: dict[str, object] = {
        "id": 7,
        "event_id": "e1",
        "event_type": "t.x",
        "event_subject": "SHP-1",
        "rule": "a",
        "channel": "sms",
        "recipient": "+14155550100",
        "status": "pending",
        "error_code": None,
        "error_message": None,
        "attempts": 0,
        "created_at": AT,
        "updated_at": AT,
        "event_time": AT - timedelta(seconds=1),
        "send_at": None,
        "rules_version": "v1",
        "cancelled_by": None,
        "cancel_on": [],
        "provider_message_id": None,
    }
    row.update(changes)
    return Detail(row)


def shown(recipient: str) -> str:
    return recipient


def test_an_opt_out_explains_stop_and_start() -> None:
    d = _detail(status="skipped", error_code="suppressed")
    d.suppression_history = [
        {
            "action": "added",
            "reason": "opt_out",
            "source": "SM1",
            "at": AT,
            "recipient": "+14155550100",
        }
    ]
    text = explain.explain(d, shown)
    assert text == (
        "Not sent: the customer replied STOP on 3 May 2026; they can text START to opt back in."
    )
    entries = timeline.build(d, shown)
    assert [e.what for e in entries] == [
        "event",
        "suppression added",
        "routed",
        "suppressed",
        "outcome",
    ]


@pytest.mark.parametrize(
    ("changes", "start"),
    [
        ({"status": "failed", "error_code": "invalid_recipient"}, "Not sent: +14155550100 is not"),
        ({"status": "failed", "error_code": "21211", "attempts": 1}, "Failed after 1 attempt"),
        ({"status": "undelivered", "error_code": "30003"}, "Not delivered: the carrier reported"),
        ({"status": "skipped", "error_code": "throttled"}, "Not sent: rule a had already"),
        ({"status": "cancelled", "cancelled_by": "e2"}, "Cancelled before it was due: event e2"),
        ({"status": "scheduled", "send_at": AT + timedelta(hours=1)}, "Scheduled for"),
        ({"status": "sent"}, "Sent to the carrier"),
        ({"status": "sent", "channel": "push"}, "Sent: FCM accepted it"),
        ({"status": "pending"}, "Waiting for a worker"),
        ({"status": "delivered"}, "Delivered"),
    ],
)
def test_every_status_is_explained(changes: dict[str, object], start: str) -> None:
    assert explain.explain(_detail(**changes), shown).startswith(start)


def test_quiet_hours_are_told_from_a_plain_delay() -> None:
    held = _detail(status="scheduled", send_at=AT + timedelta(hours=9))
    facts = timeline.RuleFacts(delay=None, quiet_hours="21:00-08:00", throttle=None)
    assert "quiet hours" in [e.what for e in timeline.build(held, shown, facts)]
    delayed = _detail(status="scheduled", send_at=AT - timedelta(seconds=1) + timedelta(hours=1))
    facts = timeline.RuleFacts(delay=timedelta(hours=1), quiet_hours="21:00-08:00", throttle=None)
    assert "scheduled" in [e.what for e in timeline.build(delayed, shown, facts)]
