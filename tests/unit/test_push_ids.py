"""`push_id`: a rule says which FCM identifier its recipients are, and each row carries it."""

from __future__ import annotations

from datetime import UTC, datetime

from rules.routing import route
from rules.ruleset import load_text
from sandbox.google.identifiers import installation_id, registration_token
from schemas import Event, PushId

RULES = """
defaults:
  push:
    title: Update
rules:
  - name: app-tokens
    on: shipment.delayed
    channel: push
    to: "{{ data.tokens }}"
    body: hi
  - name: app-installations
    on: shipment.delayed
    channel: push
    push_id: fid
    to: "{{ data.fids }}"
    body: hi
  - name: text
    on: shipment.delayed
    channel: sms
    to: "{{ data.phone }}"
    body: hi
"""


def test_each_notification_carries_the_kind_its_rule_names() -> None:
    token, fid = registration_token("ann"), installation_id("ann")
    event = Event(
        id="e1", type="shipment.delayed", time=datetime(2026, 11, 25, tzinfo=UTC),
        data={"tokens": [token], "fids": [fid], "phone": "+14155550100"},
    )  # fmt: skip
    routed = route(event, load_text(RULES), now=event.time)
    kinds = {(n.rule, n.recipient, n.push_id) for n in routed.notifications}
    assert kinds == {
        ("app-tokens", token, PushId.TOKEN),  # the default: what getToken() returns
        ("app-installations", fid, PushId.FID),
        ("text", "+14155550100", None),
    }


def test_defaults_can_name_the_kind_for_every_push_rule() -> None:
    rules = load_text(RULES.replace("title: Update", "title: Update\n    push_id: fid"))
    assert {r.name: r.rule.push_id for r in rules.rules if r.rule.channel == "push"} == {
        "app-tokens": "fid",
        "app-installations": "fid",
    }
