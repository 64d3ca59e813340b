"""Templates keep Jinja's globals after compile_template turns them into a plain dict."""

from __future__ import annotations

from rules.rendering import compile_condition, compile_template


def test_globals_are_still_visible_to_templates_expressions_and_conditions() -> None:
    assert compile_template("{{ range(3) | join(',') }} {{ data.x }}")({"data": {"x": 1}}) == (
        "0,1,2 1"
    )
    assert compile_template("{{ range(2) | list }}")({}) == [0, 1]
    assert compile_condition("data.x in range(3)")({"data": {"x": 2}}) is True


def test_a_render_never_leaks_into_the_next() -> None:
    render = compile_template("{% set seen = data.x %}{{ seen }}")
    assert render({"data": {"x": "a"}}) == "a"
    assert render({"data": {"x": "b"}}) == "b"
