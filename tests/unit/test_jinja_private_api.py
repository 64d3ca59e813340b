"""The private Jinja2 names the rules engine leans on still have the shape it expects.

rules/fast_templates.py and rules/rendering.py use three of Jinja2's private names. Jinja2 is
pinned below 3.2 for that reason (pyproject.toml); this test fails loudly, before any
template renders differently, if a release within the pin (or a raised pin) changes them.
"""

from __future__ import annotations

import enum

import jinja2
import pytest
from jinja2.runtime import StrictUndefined, Undefined
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import _PassArg, pass_context, pass_environment


def test_jinja2_is_within_the_pinned_range() -> None:
    major, minor = (int(part) for part in jinja2.__version__.split(".")[:2])
    assert (major, minor) == (3, 1), jinja2.__version__


def test_pass_arg_tells_environment_and_context_filters_apart() -> None:
    assert issubclass(_PassArg, enum.Enum)

    @pass_environment
    def with_env(env: object, value: object) -> object:
        return value

    @pass_context
    def with_context(ctx: object, value: object) -> object:
        return value

    assert _PassArg.from_obj(with_env) is _PassArg.environment
    assert _PassArg.from_obj(with_context) is _PassArg.context
    assert _PassArg.from_obj(len) is None


def test_an_undefined_fails_through_its_private_method() -> None:
    value = StrictUndefined(name="missing")
    assert isinstance(value, Undefined)
    with pytest.raises(jinja2.UndefinedError, match="missing"):
        value._fail_with_undefined_error()


def test_a_compiled_expression_exposes_its_template() -> None:
    env = SandboxedEnvironment(undefined=StrictUndefined)
    expr = env.compile_expression("data.x + 1")
    env.globals["bonus"] = 40
    template = expr._template
    assert isinstance(template, jinja2.Template)
    assert template.environment is env
    # rules/rendering.py replaces the globals' ChainMap with a plain dict of it, once.
    template.globals = dict(template.globals)
    assert env.compile_expression("data.x + bonus")(data={"x": 2}) == 42
    assert expr(data={"x": 1}) == 2
