"""A template that renders to an undefined value fails its own rule, never the event.

docs/interfaces.md section 2: "a rule whose template fails for one event fails that notification
(error code `template_error`), not the event's other rules". Each case puts one broken rule
between two healthy ones, for every key that holds a template, in each shape an Undefined
can take: a sole `{{ expr }}` (a native value), nested in a list or dict, inside text, or
passed on (an item's key, an argument) where nothing would use it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import jinja2
import pytest

from rules import rendering
from rules.routing import route
from rules.ruleset import load_text
from sandbox.google.identifiers import registration_token
from schemas import Event, Status

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
PHONE, TABLET = registration_token("ann-phone"), registration_token("ann-tablet")

HEALTHY_SMS = """
  - name: healthy-sms
    on: shipment.delayed
    channel: sms
    to: "{{ data.phone }}"
    body: "Hi {{ data.name }}"
"""
HEALTHY_PUSH = """
  - name: healthy-push
    on: shipment.*
    channel: push
    to: "{{ data.tokens }}"
    title: Delayed
    body: "Shipment {{ data.shipment_id }}"
"""
# The broken rule's keys after `name` and `on`, one case per key and shape.
BROKEN: dict[str, str] = {
    "to-sole": """channel: sms
    to: "{{ data.device }}"
    body: hi""",
    "to-nested": """channel: sms
    to: "{{ [data.phone, data.device] }}"
    body: hi""",
    "to-list": """channel: push
    to: ["{{ data.tokens }}", "{{ data.device }}"]
    body: hi""",
    "when-sole": """when: data.missing > 3
    channel: sms
    to: "{{ data.phone }}"
    body: hi""",
    "when-nested": """when: "[data.missing]"
    channel: sms
    to: "{{ data.phone }}"
    body: hi""",
    "body-sole": """channel: sms
    to: "{{ data.phone }}"
    body: "{{ data.missing }}\"""",
    "body-nested": """channel: sms
    to: "{{ data.phone }}"
    body: "Hi {{ [data.missing] }}\"""",
    "title-sole": """channel: push
    to: "{{ data.tokens }}"
    title: "{{ data.missing }}"
    body: hi""",
    "title-nested": """channel: push
    to: "{{ data.tokens }}"
    title: "{{ [data.missing] }}"
    body: hi""",
    "data-sole": """channel: push
    to: "{{ data.tokens }}"
    body: hi
    data: {ref: "{{ data.missing }}"}""",
    "data-nested": """channel: push
    to: "{{ data.tokens }}"
    body: hi
    data: {ref: "{{ {'k': data.missing} }}"}""",
    "at-sole": """channel: sms
    to: "{{ data.phone }}"
    body: hi
    at: "{{ data.missing }}\"""",
    "at-nested": """channel: sms
    to: "{{ data.phone }}"
    body: hi
    at: "{{ [data.eta, data.missing] }}\"""",
    "body-key": """channel: sms
    to: "{{ data.phone }}"
    body: "{{ dict[data.missing] }}\"""",
    "to-key": """channel: sms
    to: "{{ {'a': data.phone}[data.missing] | default(data.phone) }}"
    body: hi""",
    "title-argument": """channel: push
    to: "{{ data.tokens }}"
    title: "{{ data.name.startswith(data.missing) }}"
    body: hi""",
    "when-item": """when: "[data.missing] | length"
    channel: sms
    to: "{{ data.phone }}"
    body: hi""",
}


def rules_with(broken: str) -> str:
    bad = f"  - name: broken\n    on: shipment.delayed\n    {broken}\n"
    return "rules:" + HEALTHY_SMS + bad + HEALTHY_PUSH


def event() -> Event:
    data = {
        "phone": "+14155550100",
        "name": "Ann",
        "tokens": [PHONE, TABLET],
        "shipment_id": "SHP-1",
        "eta": "2026-11-25T15:00:00+00:00",
    }
    return Event(id="e1", type="shipment.delayed", data=data, time=NOW)


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_an_undefined_value_fails_only_its_own_rule(case: str) -> None:
    out = route(event(), load_text(rules_with(BROKEN[case])), now=NOW)
    broken = [n for n in out.notifications if n.rule == "broken"]
    assert broken, "the broken rule must leave a failed row, not vanish"
    assert {(n.status, n.error_code) for n in broken} == {(Status.FAILED, "template_error")}
    assert all("UndefinedError" in (n.error_message or "") for n in broken)
    assert all("Undefined" not in n.body for n in out.notifications)
    healthy = sorted((n.rule, n.recipient, n.status) for n in out.notifications if n not in broken)
    assert healthy == [
        ("healthy-push", PHONE, Status.PENDING),
        ("healthy-push", TABLET, Status.PENDING),
        ("healthy-sms", "+14155550100", Status.PENDING),
    ]


def test_a_defined_value_in_the_same_shapes_still_renders() -> None:
    # The check must not turn legitimate lists, dicts or falsy values into errors.
    rules = load_text(
        rules_with(
            'when: "[data.name] and not data.none"\n    channel: push\n'
            '    to: "{{ [data.tokens[0], data.tokens[1]] }}"\n'
            "    title: \"{{ {'a': data.name}['a'] }}\"\n    body: \"{{ data.none }}|{{ [0] }}\"\n"
            '    data: {ref: "{{ data.empty }}"}'
        )
    )
    ev = event()
    ev.data.update(none=None, empty=[])
    broken = [n for n in route(ev, rules, now=NOW).notifications if n.rule == "broken"]
    assert [(n.recipient, n.title, n.body, n.data, n.status) for n in broken] == [
        (PHONE, "Ann", "None|[0]", {"ref": "[]"}, Status.PENDING),
        (TABLET, "Ann", "None|[0]", {"ref": "[]"}, Status.PENDING),
    ]


@pytest.mark.parametrize(
    "source",
    ["{{ data.missing }}", "{{ [1, data.missing] }}", "{{ {'k': [data.missing]} }}",
     "text {{ [data.missing] }}", "{{ data.missing if true }}", "{{ dict[data.missing] }}",
     "x {{ dict[data.missing] }}", "{{ {}[data.missing] }}", "{{ (data.missing, 1)[1] }}",
     "{{ data.missing | default(data.missing) }}", "{{ 'a'.startswith(data.missing) }}",
     "{{ dict(k=data.missing) | length }}", "{{ [1, 2][data.missing:] }}",
     "{{ 'x' ~ data.missing }}"],
)  # fmt: skip
def test_every_compiled_template_rejects_an_undefined_result(source: str) -> None:
    # The one entry point every template key (quiet_hours' timezone, throttle keys, ...)
    # compiles through, so a new key is guarded without code of its own.
    with pytest.raises(jinja2.UndefinedError, match="missing"):
        rendering.compile_template(source)({"data": {}})


def test_a_fallback_chain_of_defaults_uses_the_first_defined_value() -> None:
    # Filters keep Jinja's behaviour: an undefined argument of `default` is only a fallback.
    chain = rendering.compile_template("{{ data.phone | default(data.mobile) }}")
    assert chain({"data": {"phone": "+1"}}) == "+1"
    assert chain({"data": {"mobile": "+2"}}) == "+2"
    with pytest.raises(jinja2.UndefinedError):
        chain({"data": {}})


def test_a_sole_expression_with_whitespace_control_keeps_its_native_value() -> None:
    from rules.rendering import compile_template

    ctx = {"data": {"tokens": ["a", "b"], "phone": "+14155550100"}}
    assert compile_template("{{- data.tokens -}}")(ctx) == ["a", "b"]
    assert compile_template("{{+ data.phone +}}")(ctx) == "+14155550100"
    assert compile_template("{{ 5 - 2 }}")(ctx) == 3
