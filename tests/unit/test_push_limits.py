"""FCM's limits, enforced before a push is sent: reserved data keys, string values, 4096 bytes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from rules import push_limits
from rules.routing import route
from rules.ruleset import load_text
from rules.tools.schema import json_schema
from schemas import Event, RulesError, Status

RULES = """
rules:
  - name: push
    on: shipment.delayed
    channel: push
    to: "{{ data.tokens }}"
    title: "{{ data.title }}"
    body: "{{ data.body }}"
    data:
      shipment_id: "{{ data.shipment_id }}"
  - name: text
    on: shipment.delayed
    channel: sms
    to: "{{ data.phone }}"
    body: "{{ data.body }}"
"""
RESERVED = ["from", "notification", "message_type", "google.c.a.e", "google", "gcm.n.e",
            "gcm.notification.title", "gcmx", "From", "GOOGLE.x", "Message_Type"]  # fmt: skip
ALLOWED = ["shipment_id", "notifications", "message", "fromage", "my.google.id", "type", "_from"]


@pytest.mark.parametrize("key", RESERVED)
def test_reserved_keys_are_refused_by_the_check(key: str) -> None:
    with pytest.raises(RulesError) as refused:
        load_text(RULES.replace("shipment_id:", f"{key}:", 1))
    [problem] = refused.value.problems
    assert problem.startswith("rules.yaml:10:7: data key ")
    assert f"{key!r} is reserved by FCM" in problem


@pytest.mark.parametrize("key", ALLOWED)
def test_other_keys_are_allowed(key: str) -> None:
    assert push_limits.reserved_key_problem(key) is None
    load_text(RULES.replace("shipment_id:", f"{key}:", 1))


@pytest.mark.parametrize("key", RESERVED + ALLOWED)
def test_the_json_schema_refuses_the_same_keys(key: str) -> None:
    for definition in ("Rule", "ChannelDefaults"):
        [branch] = [b for b in json_schema()["$defs"][definition]["properties"]["data"]["anyOf"]
                    if b.get("type") == "object"]  # fmt: skip
        assert branch["additionalProperties"] == {"type": "string"}
        refused = re.search(branch["propertyNames"]["not"]["pattern"], key) is not None
        assert refused == (key in RESERVED)


@pytest.mark.parametrize(
    ("value", "kind"),
    [("3", "a number"), ("1.5", "a number"), ("true", "true/false"), ("[a]", "a list"),
     ("{a: 1}", "a mapping"), ("", "empty")],
)  # fmt: skip
def test_data_values_must_be_strings(value: str, kind: str) -> None:
    text = RULES.replace('shipment_id: "{{ data.shipment_id }}"', f"count: {value}")
    with pytest.raises(RulesError) as refused:
        load_text(text)
    assert refused.value.problems == [
        f"rules.yaml:10:{14 if value else 13}: data.count: FCM data values are strings, "
        f"not {kind}: quote the value"
    ]


def test_reserved_keys_in_defaults_are_refused_where_they_are_written() -> None:
    text = "defaults:\n  push:\n    data: {google.sent_by: us}\n" + RULES
    with pytest.raises(RulesError) as refused:
        load_text(text)
    assert refused.value.problems == [
        "rules.yaml:3:12: data key 'google.sent_by' is reserved by FCM (no key may start with "
        "'google')"
    ]


def test_payload_counts_title_body_and_data_in_utf8_bytes() -> None:
    assert push_limits.payload_bytes("Hi", "é", {"k": "vv"}) == 2 + 2 + 1 + 2
    assert push_limits.payload_bytes(None, "x" * 4096, None) == 4096
    assert push_limits.too_large(None, "x" * 4096, None) is None
    message = push_limits.too_large("t", "x" * 4096, None)
    assert message is not None and "4097 bytes" in message and "4096" in message


def event(body: str, title: str = "Late") -> Event:
    data = {"tokens": ["tok-1", "tok-2"], "phone": "+14155550100", "title": title,
            "body": body, "shipment_id": "SHP-1"}  # fmt: skip
    return Event(id="e1", type="shipment.delayed", time=datetime(2026, 12, 1, tzinfo=UTC),
                 data=data)  # fmt: skip


def test_a_push_over_the_limit_fails_with_message_too_large_before_any_call() -> None:
    fits = 4096 - len("Late") - len("shipment_id") - len("SHP-1")
    rules = load_text(RULES)
    ok = route(event("é" * (fits // 2)), rules, now=datetime(2026, 12, 1, tzinfo=UTC))
    assert {n.status for n in ok.notifications} == {Status.PENDING}

    over = route(event("é" * (fits // 2) + "!"), rules, now=datetime(2026, 12, 1, tzinfo=UTC))
    pushes = [n for n in over.notifications if n.channel == "push"]
    assert [(n.recipient, n.status, n.error_code) for n in pushes] == [
        ("tok-1", Status.FAILED, "message_too_large"),
        ("tok-2", Status.FAILED, "message_too_large"),
    ]
    assert pushes[0].error_message == (
        "push payload is 4097 bytes (title, body and data as UTF-8), over FCM's limit of "
        "4096: shorten the rule's body or data"
    )
    # SMS has its own limits (segments); FCM's do not apply to it.
    [sms] = [n for n in over.notifications if n.channel == "sms"]
    assert sms.status is Status.PENDING
    json.dumps(pushes[0].error_message)  # plain text, stored as is
