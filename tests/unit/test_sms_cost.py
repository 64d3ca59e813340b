"""What SMS cost, without servers: routing's segments and countries, the allowlist, Twilio's
price strings, NOTIFY_SMS_COUNTRIES, and the `rules check` warning for UCS-2 templates."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from unittest import mock

import pytest

from notify import segments
from notify.settings import Settings
from rules.routing import route
from rules.ruleset import load_text
from rules.tools.encoding_check import literal_text, warnings
from schemas import Event, Status
from tasks.providers.twilio_sms import parse_price

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
