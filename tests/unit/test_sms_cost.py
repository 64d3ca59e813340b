"""What SMS cost, without servers: routing's segments and countries, the allowlist, Twilio's
price strings, NOTIFY_SMS_COUNTRIES, and the `rules check` warning for UCS-2 templates."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from unittest import mock

import pytest
import redis

from cli.main import main as cli
from notify import segments
from notify.costs import Price, Unpriced
from notify.settings import Settings
from rules.routing import route
from rules.ruleset import load_text
from rules.tools.encoding_check import literal_text, warnings
from schemas import (
    Channel,
    Event,
    Notification,
    PermanentDeliveryError,
    Status,
    TransientDeliveryError,
)
from tasks import country_pause
from tasks.prices import backfill
from tasks.providers.twilio_sms import parse_price
from tasks.runtime import Runtime
from tasks.testing import FakeWorkerStore

NOW = datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
RULES = """
rules:
  - name: text
    on: shipment.delayed
    channel: sms
    to: "{{ data.phones }}"
    body: "Hi {{ data.name }}, your parcel is late."
"""


def event(*phones: str, name: str = "Ann") -> Event:
    data = {"phones": list(phones), "name": name}
    return Event(id="e-1", type="shipment.delayed", data=data, time=NOW)


def test_routing_counts_each_body_once_and_records_country_and_encoding() -> None:
    rules = load_text(RULES)
    with mock.patch.object(segments, "count", wraps=segments.count) as counted:
        routed = route(event("+14155550100", "+14165550100", "+447400123456"), rules, now=NOW)
    assert counted.call_count == 1  # one body, three recipients
    assert [(n.country, n.segments, n.encoding) for n in routed.notifications] == [
        ("US", 1, "GSM-7"), ("CA", 1, "GSM-7"), ("GB", 1, "GSM-7"),
    ]  # fmt: skip
    ucs2 = route(event("+14155550100", name="Zoë\u2019s"), rules, now=NOW).notifications[0]
    assert (ucs2.encoding, ucs2.segments) == ("UCS-2", 1)


def test_a_country_not_allowed_fails_at_routing_with_its_cost_recorded() -> None:
    rules = load_text(RULES)
    routed = route(event("+14155550100", "+33612345678"), rules, now=NOW,
                   sms_countries=frozenset({"US", "GB"}))  # fmt: skip
    allowed, refused = routed.notifications
    assert (allowed.status, allowed.error_code) == (Status.PENDING, None)
    assert (refused.status, refused.error_code, refused.country) == (
        Status.FAILED, "country_not_allowed", "FR",
    )  # fmt: skip
    assert refused.error_message == "SMS to FR is not allowed"
    assert refused.segments == 1  # what it would have cost


def test_push_rows_have_no_sms_cost() -> None:
    rules = load_text(RULES.replace("channel: sms", "channel: push"))
    [n] = route(event("tok-1"), rules, now=NOW).notifications
    assert (n.segments, n.encoding, n.country) == (None, None, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", None), ("us, gb,CA", frozenset({"US", "GB", "CA"})), (" , ", None)],
)
def test_the_country_list_is_iso_codes(raw: str, expected: frozenset[str] | None) -> None:
    assert Settings.from_env({"NOTIFY_SMS_COUNTRIES": raw}).sms_countries == expected


def test_a_bad_country_code_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="ISO 3166"):
        Settings.from_env({"NOTIFY_SMS_COUNTRIES": "US,United Kingdom"})


def test_twilio_prices_are_debits_stored_as_positive_amounts() -> None:
    assert parse_price("-0.00790", "usd") == (Decimal("0.00790"), "USD")
    assert parse_price(None, "USD") is None  # not priced yet
    assert parse_price("", "USD") is None
    assert parse_price("n/a", "USD") is None


def test_only_a_templates_own_text_is_checked_for_gsm7() -> None:
    assert literal_text("It\u2019s {{ data.x | default('\u2014') }} {# \u2019 #}late") == (
        "It\u2019s  late"
    )
    text = RULES.replace("your parcel is late.", "your parcel\u2019s late \U0001f69a")
    [warning] = warnings(load_text(text, "r.yaml"), text)
    assert warning.startswith("r.yaml:7:11: warning: rule 'text': the body's text is not GSM-7")
    assert "(U+2019), '\U0001f69a' (U+1F69A)" in warning
    assert warnings(load_text(RULES), RULES) == []


class FakePrices:
    """fetch_price answers from a script, per SID: a price, None (not yet), or an error."""

    def __init__(self, answers: dict[str, tuple[Decimal, str] | Exception | None]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def fetch_price(self, sid: str) -> tuple[Decimal, str] | None:
        self.asked.append(sid)
        answer = self.answers[sid]
        if isinstance(answer, Exception):
            raise answer
        return answer


def backfilled(store: FakeWorkerStore, twilio: FakePrices) -> dict[str, int]:
    rt = Runtime(settings=Settings(price_lookups_per_run=10), db=store,
                 sms=twilio, push=None, pid=0, senders=ThreadPoolExecutor(1))  # type: ignore[arg-type]  # fmt: skip
    return backfill(rt)


def test_the_price_backfill_records_what_twilio_has_priced_and_stops_at_a_transient_answer() -> (
    None
):
    store = FakeWorkerStore()
    store.awaiting_price = [Unpriced(n, f"SM{n}", "text", "US") for n in range(1, 6)]
    twilio = FakePrices({
        "SM1": (Decimal("0.0079"), "USD"), "SM2": None,
        "SM3": PermanentDeliveryError("20404", "no such message"),
        "SM4": TransientDeliveryError("429", "Too Many Requests"), "SM5": (Decimal(1), "USD"),
    })  # fmt: skip
    assert backfilled(store, twilio) == {"priced": 0, "unpriced": 1, "not_found": 1, "stopped": 1}
    assert store.prices == [Price("SM1", Decimal("0.0079"), "USD")]
    assert twilio.asked == ["SM1", "SM2", "SM3", "SM4"]  # SM5 waits for the next run


def test_preview_names_what_makes_a_body_ucs2_and_check_warns_but_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.replace("your parcel is late.", "your parcel\u2019s late."))
    data = '{"phones": ["+14155550100"], "name": "Ann"}'
    assert cli([
        "rules", "preview", str(path), "--type", "shipment.delayed", "--data", data, "--json",
    ]) == 0  # fmt: skip
    [item] = json.loads(capsys.readouterr().out)["notifications"]
    assert item["sms"] == {"encoding": "UCS-2", "characters": 27, "segments": 1,
                           "country": "US", "not_gsm": ["\u2019"]}  # fmt: skip
    assert item["warnings"] == [
        "UCS-2 (70 characters a segment, not 160) because of '\u2019' (U+2019)"
    ]
    assert cli(["rules", "check", str(path)]) == 0
    out = capsys.readouterr()
    assert out.out.startswith(f"{path}: OK")
    assert f"{path}:7:11: warning: rule 'text'" in out.err


class ScriptedBreaker:
    """CountryBreaker's `admit` from a script: how many more segments each country takes."""

    def __init__(self, room: dict[str, int], fail: bool = False) -> None:
        self.room, self.fail = dict(room), fail
        self.asked: list[tuple[str, list[int]]] = []

    def admit(self, country: str, segments: list[int]) -> list[bool]:
        self.asked.append((country, list(segments)))
        if self.fail:
            raise redis.ConnectionError("Redis went away")
        out = []
        for n in segments:
            out.append(self.room.get(country, 0) > 0)
            self.room[country] = self.room.get(country, 0) - n
        return out


def sms_row(nid: int, number: str, segments_: int = 1) -> Notification:
    return Notification(
        id=nid, idempotency_key=f"k{nid}", event_id="e", event_type="t", rule="r",
        channel=Channel.SMS, recipient=number, body="hi", title=None, data=None,
        status=Status.SENDING, attempts=1, provider_message_id=None, error_code=None,
        send_at=None, segments=segments_, country=None,
    )  # fmt: skip


def test_the_breaker_asks_once_per_country_and_holds_back_what_it_refuses() -> None:
    rows = [sms_row(1, "+447400100001"), sms_row(2, "+14155550100"),
            sms_row(3, "+447400100002", 2), sms_row(4, "+447400100003")]  # fmt: skip
    breaker = ScriptedBreaker({"GB": 2, "US": 5})
    send, held = country_pause.split(breaker, rows)  # type: ignore[arg-type]
    assert breaker.asked == [("GB", [1, 2, 1]), ("US", [1])]  # one round trip per country
    assert [r.id for r in send] == [1, 3, 2]
    assert {c: [r.id for r in rs] for c, rs in held.items()} == {"GB": [4]}
    store = FakeWorkerStore({4: rows[3]})
    store.claim(4)
    assert country_pause.hold_back(store, held, 2) == [4]
    assert store.held_back == {4: "country_paused"}


def test_without_redis_the_breaker_lets_sms_go_rather_than_stop_them_all() -> None:
    rows = [sms_row(1, "+447400100001"), sms_row(2, "+447400100002")]
    send, held = country_pause.split(ScriptedBreaker({}, fail=True), rows)  # type: ignore[arg-type]
    assert [r.id for r in send] == [1, 2] and held == {}
