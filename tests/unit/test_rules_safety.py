"""The sandbox: data is never template source, internals are refused, templates compile once."""

from __future__ import annotations

from datetime import UTC, datetime

from pytest_mock import MockerFixture

from rules import rendering
from rules.routing import explain, route
from rules.ruleset import load_text
from schemas import Event, Status

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
RULES = """
defaults:
  push:
    title: "Update"
rules:
  - name: hello
    on: [shipment.delayed, "order.*"]
    when: data.delay_minutes >= 30
    channel: sms
    to: "{{ data.phone }}"
    body: "Hi {{ data.name }}, {{ data.delay_minutes | humanize_minutes }} late"
  - name: push
    on: shipment.*
    channel: push
    to: "{{ data.tokens }}"
    body: "ETA {{ data.eta | localtime('Europe/Berlin', '%H:%M') }}"
    data:
      shipment: "{{ data.id }}"
  - name: off
    enabled: false
    on: shipment.delayed
    channel: sms
    to: "{{ data.phone }}"
    body: never
"""


def event(**data: object) -> Event:
    base: dict[str, object] = {
        "phone": "+14155550100", "name": "Ann", "delay_minutes": 45, "tokens": ["t1", "t2"],
        "eta": "2026-11-25T15:30:00Z", "id": "S1",
    }  # fmt: skip
    base.update(data)
    return Event(id="e1", type="shipment.delayed", data=base, time=NOW)


def test_the_language_routes_renders_and_explains() -> None:
    rules = load_text(RULES)
    out = route(event(), rules, now=NOW)
    sms, *pushes = out.notifications
    assert (sms.recipient, sms.body) == ("+14155550100", "Hi Ann, 45 min late")
    assert [(p.recipient, p.title, p.body, p.data) for p in pushes] == [
        ("t1", "Update", "ETA 16:30", {"shipment": "S1"}),
        ("t2", "Update", "ETA 16:30", {"shipment": "S1"}),
    ]
    assert explain(event(), rules, out) == [("off", "disabled")]
    quiet = route(event(delay_minutes=5), rules, now=NOW)
    assert quiet.declined == ["hello"]
    reasons = explain(event(delay_minutes=5), rules, quiet)
    assert ("hello", "condition is false: data.delay_minutes >= 30") in reasons


def test_event_data_is_never_template_source() -> None:
    [sms, *_] = route(event(name="{{ 7*7 }}"), load_text(RULES), now=NOW).notifications
    assert sms.body == "Hi {{ 7*7 }}, 45 min late"


def test_an_undefined_name_fails_that_notification_only() -> None:
    data = event().data
    del data["name"]
    out = route(Event(id="e1", type="shipment.delayed", data=data, time=NOW), load_text(RULES),
                now=NOW)  # fmt: skip
    failed = [n for n in out.notifications if n.status is Status.FAILED]
    assert [(n.rule, n.error_code) for n in failed] == [("hello", "template_error")]
    assert sum(n.status is Status.PENDING for n in out.notifications) == 2  # pushes still go


def test_an_invalid_number_fails_without_a_provider() -> None:
    [sms, *_] = route(event(phone="12345"), load_text(RULES), now=NOW).notifications
    assert (sms.status, sms.error_code, sms.recipient) == (
        Status.FAILED,
        "invalid_recipient",
        "12345",
    )


def test_national_numbers_use_the_default_region() -> None:
    [sms, *_] = route(event(phone="030 901820"), load_text(RULES), now=NOW,
                      default_region="DE").notifications  # fmt: skip
    assert sms.recipient == "+4930901820"


def test_internals_are_refused_at_render_time_too() -> None:
    # `check` refuses a literal `__class__`; a computed name reaches the sandbox itself.
    rules = load_text(RULES.replace('body: "Hi {{ data.name }}', 'body: "{{ data[data.k] }}'))
    [sms, *_] = route(event(k="__class__"), rules, now=NOW).notifications
    assert (sms.status, sms.error_code) == (Status.FAILED, "template_error")


def test_templates_compile_once_per_rules_version(mocker: MockerFixture) -> None:
    spy = mocker.spy(rendering.ENV, "from_string")
    rules = load_text(RULES)
    compiled = spy.call_count
    for _ in range(50):
        route(event(), rules, now=NOW)
    assert compiled > 0 and spy.call_count == compiled
