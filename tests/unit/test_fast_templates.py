"""The fast path renders exactly what Jinja renders: same values, same errors, same sandbox.

Templates and expressions are generated from the nodes rules/fast_templates.py handles
(and some it does not, which must fall back); each is rendered both ways over generated
payloads whose keys include the names of dict's own attributes (`items`, `keys`, ...), so the
dict shortcut meets the cases where an attribute, not the item, wins.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2.exceptions import SecurityError, UndefinedError

from rules import fast_templates
from rules.rendering import (
    ENV,
    compile_condition,
    compile_template,
    parse_expression,
    parse_template,
)
from tests.profiles import examples

KEYS = ["a", "b", "customer", "phone", "name", "items", "keys", "get", "values", "copy", "n"]
NAMES = ["data", "event", "missing", "range", "dict", "lipsum", "namespace"]
FILTERS = [
    "upper", "lower", "length", "string", "trim", "title", "capitalize", "first", "last",
    "int", "float", "round", "abs", "list", "sort", "unique", "max", "sum", "wordcount",
    "humanize_minutes", "mask", "localtime('UTC')", "localtime('Europe/Berlin', '%H:%M')",
    "default('d')", "default('d', true)", "truncate(5)", "join(', ')", "replace('a', 'b')",
    "attr('a')", "attr('items')", "items", "e", "tojson",
]  # fmt: skip
TESTS = ["defined", "undefined", "none", "number", "string", "mapping", "sequence",
         "divisibleby 3", "in [1, 'a']", "sameas none", "true", "lower"]  # fmt: skip
ARGUMENT_FILTERS = ["default", "join", "round", "truncate", "attr"]
ARGUMENT_TESTS = ["sameas", "in", "divisibleby"]
BINARY = ["==", "!=", "<", "<=", ">", ">=", "in", "not in", "and", "or", "~", "+", "-", "*",
          "/", "//", "%"]  # fmt: skip
TEXT = st.text(st.sampled_from(list("ab xyZ.,:-'\"\n\t{}%#é€")), max_size=12).filter(
    lambda s: (
        not any(t in s for t in ("{{", "{%", "{#", "}}", "%}", "#}"))
        and not s.endswith(("{", "}"))
        and not s.startswith(("}", "%", "#"))
    )
)

scalars = (
    st.integers(-50, 200)
    | st.sampled_from([0.5, 2.0, -1.25, 1e3])
    | st.sampled_from(["", "a", "Ann", "+14155550100", "x y", "2026-11-25T15:30:00Z"])
    | st.booleans()
    | st.none()
)
payloads = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner),
    max_leaves=12,
)


@st.composite
def paths(draw: st.DrawFn) -> str:
    out = draw(st.sampled_from(NAMES))
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from([*KEYS, "type", "time", "subject", "0", "1"]))
        form = draw(st.sampled_from(["attr", "item", "item"]))
        if key.isdigit():
            out += f"[{key}]" if form == "item" else f".{key}"
        else:
            out += f".{key}" if form == "attr" else f"[{key!r}]"
    return out


constants = st.sampled_from(["1", "30", "0", "2.5", "'a'", "''", "'x y'", "true", "none", "[1, 2]",
                             "('a', 'b')", "[]"])  # fmt: skip


def _compose(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return (
        st.tuples(inner, st.sampled_from(FILTERS)).map(lambda t: f"({t[0]}) | {t[1]}")
        | st.tuples(inner, st.sampled_from(["is", "is not"]), st.sampled_from(TESTS)).map(
            lambda t: f"({t[0]}) {t[1]} {t[2]}"
        )
        | st.tuples(inner, st.sampled_from(BINARY), inner).map(
            lambda t: f"({t[0]}) {t[1]} ({t[2]})"
        )
        | st.tuples(inner, inner, inner).map(lambda t: f"({t[0]}) < ({t[1]}) <= ({t[2]})")
        | inner.map(lambda e: f"not ({e})")
        | st.lists(inner, min_size=1, max_size=3).map(lambda items: f"[{', '.join(items)}]")
        | st.lists(inner, min_size=1, max_size=2).map(lambda items: f"({', '.join(items)},)")
        | st.tuples(inner, inner).map(lambda t: f"({t[0]})[{t[1]}]")
        | st.tuples(inner, st.sampled_from(KEYS)).map(lambda t: f"({t[0]}).{t[1]}")
        # Values passed on: a filter's or a test's argument, a dict literal's key and value.
        | st.tuples(inner, st.sampled_from(ARGUMENT_FILTERS), inner).map(
            lambda t: f"({t[0]}) | {t[1]}({t[2]})"
        )
        | st.tuples(inner, st.sampled_from(ARGUMENT_TESTS), inner).map(
            lambda t: f"({t[0]}) is {t[1]}({t[2]})"
        )
        | st.tuples(inner, inner).map(lambda t: f"{{'k': ({t[0]}), ({t[1]}): 1}}")
    )


expressions = st.recursive(paths() | constants, _compose, max_leaves=5)


@st.composite
def templates(draw: st.DrawFn) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        parts.append(draw(TEXT))
        left, right = draw(st.sampled_from([("{{ ", " }}"), ("{{- ", " -}}"), ("{{", "}}")]))
        parts.append(f"{left}{draw(expressions)}{right}")
    parts.append(draw(TEXT))
    return "".join(parts)


@st.composite
def contexts(draw: st.DrawFn) -> dict[str, Any]:
    data = draw(st.dictionaries(st.sampled_from(KEYS), payloads, max_size=6))
    event = {
        "id": "e-1",
        "type": draw(st.sampled_from(["shipment.delayed", "order.placed"])),
        "source": draw(st.none() | st.just("api")),
        "subject": draw(st.none() | st.just("SHP-1")),
        "time": datetime(2026, 11, 25, 12, 30, tzinfo=UTC),
    }
    return {"data": data, "event": event}


def outcome(render: Any, ctx: dict[str, Any]) -> tuple[str, Any]:
    """What a render produced: its value (and type), or its error's type and message."""
    try:
        value = render(ctx)
    except Exception as exc:  # noqa: BLE001 - the error is the outcome compared
        return "error", (type(exc), str(exc))
    return "value", (type(value), value)


def both(compile_: Any, source: str, ctx: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The outcome of compiling and rendering `source` fast and slow (compile errors too)."""
    results = []
    for fast in (True, False):
        try:
            render = compile_(source, fast=fast)
        except Exception as exc:  # noqa: BLE001
            results.append(("compile error", (type(exc), str(exc))))
        else:
            results.append(outcome(render, ctx))
    return tuple(results)


def same(fast: tuple[str, Any], slow: tuple[str, Any]) -> bool:
    if fast == slow:
        return True
    # Not equal to itself: a NaN, or a method of a list literal built anew by each render
    # (its text says where it lives). Then the text must match, addresses aside.
    return _text(fast) == _text(slow)


def _text(result: tuple[str, Any]) -> str:
    return re.sub(r" at 0x[0-9a-f]+", "", repr(result))


HYPOTHESIS = settings(
    max_examples=examples(700), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@HYPOTHESIS
@given(templates(), contexts())
def test_a_template_renders_the_same_both_ways(source: str, ctx: dict[str, Any]) -> None:
    assert same(*both(compile_template, source, ctx))


@HYPOTHESIS
@given(expressions, contexts())
def test_a_sole_expression_keeps_the_same_value_both_ways(expr: str, ctx: dict[str, Any]) -> None:
    assert same(*both(compile_template, "{{ " + expr + " }}", ctx))


@HYPOTHESIS
@given(expressions, contexts())
def test_a_condition_decides_the_same_both_ways(expr: str, ctx: dict[str, Any]) -> None:
    assert same(*both(compile_condition, expr, ctx))


# An undefined value and the places it is passed on without being used, so StrictUndefined
# alone would not fail: `dict[x]` makes a GenericAlias, `[x] | length` counts. (Filters and
# tests keep Jinja's own behaviour: `a | default(x)` is a fallback chain.)
UNDEFINED = ["missing", "data.zz", "event.zz", "range.zz", "data.zz | default(missing)"]
PASSED_ON = ["({e})[{u}]", "dict[{u}]", "[{e}, {u}]", "({u}, {e})", "{{'k': {u}}}",
             "{{({u}): ({e})}}", "[{e}][{u}:]", "dict(k={u})", "({e}).get('a', {u})"]  # fmt: skip


@HYPOTHESIS
@given(st.sampled_from(PASSED_ON), expressions, st.sampled_from(UNDEFINED), contexts())
def test_an_undefined_value_passed_on_fails_both_ways(
    shape: str, expr: str, undefined: str, ctx: dict[str, Any]
) -> None:
    # `is defined` takes anything, the undefined too: only passing it on can fail.
    source = "(" + shape.format(e=expr, u=undefined) + ") is defined"
    fast, slow = both(compile_condition, source, ctx)
    assert same(fast, slow)
    assert fast[0] != "value"  # `expr` may fail first, even to compile: `{[1]: 1}`
    if both(compile_condition, f"({expr}) is defined", ctx)[1][0] == "value":
        assert fast[1][0] is UndefinedError
    template = both(compile_template, "x {{ " + source + " }}", ctx)
    assert same(*template) and template[0][0] != "value"


def test_the_common_templates_take_the_fast_path() -> None:
    """The property tests above compare something only if these are not all fallbacks."""
    for source in [
        "{{ data.customer.phone }}",
        "Hi {{ data.customer.name }}, {{ data.delay_minutes | humanize_minutes }} late.",
        "{{ data['customer']['tokens'][0] }} {{ event.subject ~ '!' }}",
        "{{ data.eta | localtime(data.customer.tz, '%H:%M') }}",
        "{{ [data.a, data.b] }}{{ data.items }}{{ 'x' | upper }}",
        "",
        "plain text\n",
    ]:
        assert fast_templates.compile_template(ENV, parse_template(source)) is not None, source
    for expr in ["data.delay_minutes >= 30", "data.a is defined and not data.b",
                 "data.n in [1, 2] or event.type == 'x'", "1 < data.n <= 3",
                 "data.n * 2 - 1 > data.n // 2 % 3"]:  # fmt: skip
        assert fast_templates.compile_expression(ENV, parse_expression(expr)) is not None, expr


@pytest.mark.parametrize(
    "source",
    [
        "{% if data.a %}x{% endif %}",
        "{% for x in data.a %}{{ x }}{% endfor %}",
        "{% set y = 1 %}{{ y }}",
        "{{ data.a() }}",
        "{{ data.a[1:2] }}",
        "{{ data.a if data.b }}",
        "{{ data.a | map('upper') }}",
        "{{ self }}",
        "{{ 2 ** 3 }}",
    ],
)
def test_everything_else_falls_back_to_jinja(source: str) -> None:
    assert fast_templates.compile_template(ENV, parse_template(source)) is None


@pytest.mark.parametrize(
    "source",
    [
        "{{ data.__class__ }}",
        "{{ data.items.__self__ }}",
        "{{ data['__class__'] }}",
        "{{ ''.__class__.__mro__ }}",
        "{{ event.time.__class__ }}",
        "{{ data.items.__func__ }}",
        "{{ data.a.__globals__ }}",
        "{{ (data | attr('__class__')) }}",
        "{{ 'x'.format }}",
        "{{ data.__class__ ~ '' }}",
    ],
)
def test_the_sandbox_refuses_the_same_things_both_ways(source: str) -> None:
    ctx = {"data": {"a": "x"}, "event": {"time": datetime(2026, 1, 1, tzinfo=UTC)}}
    fast, slow = both(compile_template, source, ctx)
    assert same(fast, slow)
    if fast[0] == "error":
        assert fast[1][0] in (SecurityError, UndefinedError)


def test_undefined_is_never_rendered_as_text_on_the_fast_path() -> None:
    """The template_error fix (rendering.reject_undefined) holds for fast renders too."""
    render = compile_template("{{ data.missing }}")
    assert fast_templates.compile_expression(ENV, parse_expression("data.missing")) is not None
    with pytest.raises(UndefinedError, match="has no attribute 'missing'"):
        render({"data": {}})
    with pytest.raises(UndefinedError):
        compile_template("{{ [data.missing] }}")({"data": {}})
    with pytest.raises(UndefinedError):
        compile_template("Hi {{ {'a': data.missing}['a'] }}")({"data": {}})
    with pytest.raises(UndefinedError):
        compile_condition("[data.missing]")({"data": {}})
