"""Finding a send whose answer was lost: the matching rules (pure), then the real SDK's walk."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from notify.settings import Settings
from sandbox import Sandbox
from tasks.providers.twilio_sms import TwilioSms
from tasks.reconcile import CLOCK_SKEW, Inconclusive, Listed, candidates, choose

SENDER = "+15005550006"
SINCE = datetime(2026, 11, 25, 23, 59, 30, tzinfo=UTC)  # just before midnight GMT


def message(sid: str, seconds: float, body: str = "hi", **extra: object) -> Listed:
    """A message created `seconds` after SINCE (negative: before)."""
    fields: dict[str, object] = {"from_": SENDER, **extra}
    return Listed(sid=sid, body=body, date_created=SINCE + timedelta(seconds=seconds),
                  **fields)  # type: ignore[arg-type]  # fmt: skip


def walk(listed: list[Listed], limit: int = 200) -> tuple[list[str], bool]:
    found, complete = candidates(iter(listed), body="hi", sender=SENDER, since=SINCE, limit=limit)
    return [m.sid for m in found], complete


def test_a_queued_message_with_no_date_sent_matches_across_midnight() -> None:
    # Created after the send began, on the next GMT day, never sent: DateSent finds nothing.
    queued = message("SMq", 45, date_sent=None)
    assert walk([queued]) == (["SMq"], True)


def test_body_and_sender_must_both_match() -> None:
    listed = [
        message("SMbody", 5, body="hi there"),
        message("SMfrom", 4, from_="+15005550007"),
        message("SMservice", 3, from_=None, messaging_service_sid=SENDER),
        message("SMours", 2),
    ]
    assert walk(listed) == (["SMservice", "SMours"], True)


def sent(sid: str, seconds: float, **extra: object) -> Listed:
    """A message created and sent `seconds` after SINCE."""
    return message(sid, seconds, date_sent=SINCE + timedelta(seconds=seconds), **extra)


def test_the_walk_stops_at_the_first_message_sent_before_the_window() -> None:
    margin = CLOCK_SKEW.total_seconds()
    seen: list[str] = []

    def lazily() -> Iterator[Listed]:
        for m in [sent("SMin", -margin + 1), message("SMqueued", -margin - 900, date_sent=None),
                  sent("SMold", -margin - 1), sent("SMolder", -margin - 60)]:  # fmt: skip
            seen.append(m.sid)
            yield m

    found, complete = candidates(lazily(), body="hi", sender=SENDER, since=SINCE)
    # A queued message created long ago says nothing about what follows it: the walk goes on.
    assert ([m.sid for m in found], complete) == (["SMin", "SMqueued"], True)
    assert seen == ["SMin", "SMqueued", "SMold"]  # no further page is fetched


def test_a_body_twilio_rewrote_is_still_ours() -> None:
    # Smart Encoding swaps look-alikes; link shortening swaps the URL.
    body = "It\u2019s \u201con its way\u201d \u2013 track https://example.com/t/SHP-1\u2026"
    stored = 'It\'s "on its way" - track https://twil.io/ab12...'
    found, complete = candidates([message("SMours", 2, body=stored)], body=body,
                                 sender=SENDER, since=SINCE)  # fmt: skip
    assert ([m.sid for m in found], complete) == (["SMours"], True)
    assert walk([message("SMother", 2, body="It's off")]) == ([], True)


def test_a_long_queued_message_does_not_stop_the_walk_but_one_sent_before_does() -> None:
    # Created before the window but sent inside it: later entries may still be in the window.
    late = message("SMlate", -600, body="other", date_sent=SINCE + timedelta(seconds=10))
    sent_before = message("SMx", -600, body="other", date_sent=SINCE - timedelta(seconds=599))
    assert walk([late, message("SMours", 1), sent_before, message("SMnever", 2)]) == (
        ["SMours"],
        True,
    )


def test_a_walk_cut_short_by_its_bound_is_not_complete() -> None:
    busy = [message(f"SM{n}", 100 - n, body="other") for n in range(10)]
    assert walk(busy, limit=5) == ([], False)
    assert walk(busy[:5], limit=5) == ([], True)  # the list simply ended


def test_choose_takes_the_earliest_match_no_other_notification_holds() -> None:
    found = [message("SMlater", 20), message("SMfirst", 2), message("SMtheirs", 1)]
    assert choose(found, True, taken={"SMtheirs"}) == "SMfirst"
    assert choose(found, False, taken={"SMtheirs"}) == "SMfirst"  # any free match will do


def test_choose_says_absent_only_when_the_walk_was_complete() -> None:
    assert choose([], True, taken=set()) is None
    assert choose([message("SMtheirs", 1)], True, taken={"SMtheirs"}) is None
    with pytest.raises(Inconclusive):
        choose([message("SMtheirs", 1)], False, taken={"SMtheirs"})


@pytest.fixture
def sms() -> Iterator[tuple[Sandbox, TwilioSms]]:
    with Sandbox(sms_rate=0) as sandbox:  # Twilio holds every message `queued`
        settings = Settings(
            twilio_account_sid="AC" + "0" * 32, twilio_auth_token="t",
            twilio_phone_number=SENDER, twilio_api_url=sandbox.url,
        )  # fmt: skip
        yield sandbox, TwilioSms(settings)


def test_the_sdk_walk_finds_a_queued_message_behind_pages_of_others(
    sms: tuple[Sandbox, TwilioSms],
) -> None:
    sandbox, twilio = sms
    to = "+14155550100"
    since = datetime.now(UTC)
    ours = twilio.send(to, "the lost one")
    for n in range(120):  # more than two pages of 50, newer than ours
        twilio.send(to, f"later {n}")
    twilio.send("+14155550101", "the lost one")  # same text, another number

    found, complete = twilio.candidates(to, "the lost one", since)
    assert ([m.sid for m in found], complete) == ([ours], True)
    assert {m.status for m in sandbox.messages("sms")} == {"queued"}
    assert found[0].date_sent is None
