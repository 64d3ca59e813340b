"""Twilio's Messages list: filters and paging, as pure functions and through the SDK."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from sandbox import Sandbox
from sandbox.twilio.listing import ListError, build_page, filter_date, matches, parse_query
from tests.sandbox.helpers import ACCOUNT_SID, AUTH_TOKEN, FROM, TO, SandboxTwilioHttpClient

LIST_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


def _resource(n: int, sent: str | None = None, to: str = TO) -> dict[str, Any]:
    return {"sid": f"SM{n:032x}", "to": to, "from": FROM, "date_sent": sent}


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("2019-06-11", date(2019, 6, 11)),
        ("2019-06-11T22:05:25Z", date(2019, 6, 11)),  # what the twilio SDK sends
        ("2019-06-11 22:05:25.000", date(2019, 6, 11)),  # the spec's own examples:
        ("06/11/2019 22:05:25 MST", date(2019, 6, 11)),
        ("Wed, 19 Jun 2019 22:04:00 -0000", date(2019, 6, 19)),
        ("2019-06-11T23:30:00-05:00", date(2019, 6, 11)),  # the date as written
    ],
)
def test_date_filters_take_the_date_and_ignore_the_time(text: str, day: date) -> None:
    assert filter_date(text) == day


@pytest.mark.parametrize("text", ["yesterday", "2019-13-01", "13/40/2019", ""])
def test_a_date_filter_that_is_no_date_is_refused(text: str) -> None:
    with pytest.raises(ListError):
        filter_date(text)


def test_date_filters_compare_whole_days_inclusive() -> None:
    noon = "Tue, 11 Jun 2019 12:00:00 +0000"
    sent = _resource(1, noon)

    def hit(**params: str) -> bool:
        return matches(sent, parse_query(params))

    assert hit(**{"DateSent": "2019-06-11T23:59:59Z"})
    assert hit(**{"DateSent>": "2019-06-11T13:00:00Z"})  # later that day: still matches
    assert hit(**{"DateSent<": "2019-06-11T01:00:00Z"})
    assert not hit(**{"DateSent>": "2019-06-12"})
    assert not hit(**{"DateSent<": "2019-06-10"})
    assert not hit(**{"DateSent": "2019-06-10"})
    assert hit(**{"DateSent>": "2019-06-01", "DateSent<": "2019-06-30", "To": TO})
    assert not hit(**{"DateSent>": "2019-06-01", "To": "+14155550111"})


def test_a_message_not_yet_sent_matches_no_date_filter() -> None:
    queued = _resource(1, None)

    for key in ("DateSent", "DateSent<", "DateSent>"):
        assert not matches(queued, parse_query({key: "2019-06-11"}))
    assert matches(queued, parse_query({"To": TO}))


def test_pages_carry_relative_uris_and_tokens() -> None:
    rows = [_resource(n) for n in range(5, 0, -1)]  # newest first
    query = parse_query({"To": TO, "DateSent>": "2008-01-02", "PageSize": "2"})

    first = build_page(rows, query, LIST_PATH)

    assert [m["sid"] for m in first["messages"]] == [rows[0]["sid"], rows[1]["sid"]]
    assert (first["page"], first["page_size"], first["start"], first["end"]) == (0, 2, 0, 1)
    assert first["previous_page_uri"] is None
    assert (
        first["uri"]
        == first["first_page_uri"]
        == (f"{LIST_PATH}?To=%2B14155550100&DateSent%3E=2008-01-02&PageSize=2&Page=0")
    )
    assert first["next_page_uri"] == (
        f"{LIST_PATH}?To=%2B14155550100&DateSent%3E=2008-01-02&PageSize=2&Page=1"
        f"&PageToken=PA{rows[1]['sid']}"
    )
    second = build_page(rows, parse_query(_params(first["next_page_uri"])), LIST_PATH)
    assert [m["sid"] for m in second["messages"]] == [rows[2]["sid"], rows[3]["sid"]]
    assert (second["start"], second["end"]) == (2, 3)
    back = build_page(rows, parse_query(_params(second["previous_page_uri"])), LIST_PATH)
    assert back["messages"] == first["messages"]
    # New messages arriving in front do not shift a page reached by token.
    grown = [_resource(9), *rows]
    again = build_page(grown, parse_query(_params(first["next_page_uri"])), LIST_PATH)
    assert again["messages"] == second["messages"]


def test_empty_page_matches_the_spec_envelope() -> None:
    page = build_page([], parse_query({"DateSent<": "2008-01-02"}), LIST_PATH)

    assert page == {
        "end": 0,
        "first_page_uri": f"{LIST_PATH}?DateSent%3C=2008-01-02&PageSize=50&Page=0",
        "messages": [],
        "next_page_uri": None,
        "page": 0,
        "page_size": 50,
        "previous_page_uri": None,
        "start": 0,
        "uri": f"{LIST_PATH}?DateSent%3C=2008-01-02&PageSize=50&Page=0",
    }


@pytest.mark.parametrize(
    "params",
    [{"PageSize": "x"}, {"PageSize": "0"}, {"Page": "-1"}, {"PageToken": "nope"}],
)
def test_bad_paging_parameters_are_refused(params: dict[str, str]) -> None:
    with pytest.raises(ListError):
        parse_query(params)


def test_page_size_is_capped_at_1000() -> None:
    assert parse_query({"PageSize": "5000"}).size == 1000


def _params(uri: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(uri).query).items()}


# --- through the emulator and the SDK -------------------------------------


def test_sdk_follows_relative_next_page_uris(sandbox: Sandbox, twilio: Client) -> None:
    sids = [twilio.messages.create(to=TO, from_=FROM, body=f"m{i}").sid for i in range(7)]
    twilio.messages.create(to="+14155550111", from_=FROM, body="other")

    streamed = [m.sid for m in twilio.messages.stream(to=TO, page_size=3)]

    assert streamed == list(reversed(sids))  # three pages, newest first
    page = twilio.messages.page(to=TO, page_size=3)
    assert page.next_page_url is not None
    assert page.next_page_url.startswith("https://api.twilio.com/2010-04-01/Accounts/")


def test_list_refuses_a_date_that_is_no_date(sandbox: Sandbox) -> None:
    resp = requests.get(
        f"{sandbox.url}{LIST_PATH}",
        params={"DateSent>": "soon"},
        auth=(ACCOUNT_SID, "x"),
        timeout=5,
    )

    assert resp.status_code == 400
    assert resp.json()["code"] == 20001


def test_list_is_per_account(sandbox: Sandbox, twilio: Client) -> None:
    twilio.messages.create(to=TO, from_=FROM, body="mine")
    other = Client("AC" + "9" * 32, AUTH_TOKEN, http_client=SandboxTwilioHttpClient(sandbox.url))

    assert other.messages.list() == []
    with pytest.raises(TwilioRestException) as err:
        other.messages(sandbox.messages()[0].id).fetch()
    assert (err.value.status, err.value.code) == (404, 20404)
    other.http_client.session.close()


def test_listings_long_poll_parameters_are_read_once_for_every_listing() -> None:
    from sandbox.control.args import MAX_WAIT_S, BadRequest, wait_params

    assert wait_params({}, 5.0) == (0, 5.0)
    assert wait_params({"wait_for": "3", "timeout": "1.5"}, 10.0) == (3, 1.5)
    assert wait_params({"timeout": "9999"}, 10.0) == (0, MAX_WAIT_S)
    for bad in ({"wait_for": "x"}, {"timeout": "soon"}):
        with pytest.raises(BadRequest, match="wait_for/timeout must be numbers"):
            wait_params(bad, 5.0)
