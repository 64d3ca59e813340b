"""The Jinja2 sandbox that runs rule conditions and templates. Pure: no I/O."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, Undefined, nodes
from jinja2.environment import TemplateExpression
from jinja2.parser import Parser
from jinja2.sandbox import SandboxedEnvironment

from notify.logs import mask
from rules import fast_templates

# `{{ expr }}` alone is evaluated as an expression so it can yield a list of recipients.
# Whitespace control (`{{- x -}}`) is Jinja syntax, not part of the expression.
_SOLE_EXPRESSION = re.compile(
    r"^\s*\{\{[-+]?(?P<expr>(?:(?!\{\{|\}\}).)*?)[-+]?\}\}\s*$", re.DOTALL
)


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    raise ValueError(f"cannot read {value!r} as a time")


def localtime(value: Any, tz: str = "UTC", fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Format a time (datetime, RFC 3339 text or epoch seconds) in a named timezone."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {tz!r}") from None
    return _as_datetime(value).astimezone(zone).strftime(fmt)


def humanize_minutes(value: Any) -> str:
    """45 -> '45 min', 90 -> '1 h 30 min', 1500 -> '1 d 1 h'."""
    minutes = round(float(value))
    days, rest = divmod(abs(minutes), 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else ""]
    parts.append(f"{mins} min" if mins and not days else "")
    text = " ".join(p for p in parts if p) or "0 min"
    return f"-{text}" if minutes < 0 else text


def reject_undefined(value: Any) -> Any:
    """Return `value`, or raise UndefinedError if an Undefined is in it, however deep.

    StrictUndefined raises only when it is used. A sole `{{ expr }}` returns it unused (it
    would blow up later, outside the rule's guard: in normalise(), in the consumer), and one
    inside a list or dict is printed as `Undefined` without raising at all. Every renderer
    and every `{{ }}` output passes through here, so any template key gets the check."""
    stack, seen = [value], set()
    while stack:
        item = stack.pop()
        if isinstance(item, Undefined):
            item._fail_with_undefined_error()
        if isinstance(item, list | tuple | set | frozenset | dict) and id(item) not in seen:
            seen.add(id(item))  # a list can be made to contain itself
            stack.extend(item.items() if isinstance(item, dict) else item)
    return value


def reject_passed_undefined(value: Any) -> Any:
    """`value`, or UndefinedError if it is an Undefined: the check where a value is passed on.

    Shallow: whatever could hold an Undefined (a list, tuple or dict literal, a call) is built
    from values passed on, each checked where it is written."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return value


_Tree = TypeVar("_Tree", bound=nodes.Node)
# The filter `_check_passing` wraps each passed-on value in; not meant to be written by hand.
_PASSED = "_passed"


def make_environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, finalize=reject_undefined
    )
    env.filters[_PASSED] = reject_passed_undefined
    env.filters["localtime"] = localtime
    env.filters["humanize_minutes"] = humanize_minutes
    env.filters["mask"] = mask
    return env


ENV = make_environment()

Renderer = Callable[[dict[str, Any]], Any]


def _plain_globals(template: Template) -> None:
    # Jinja keeps a template's globals as a ChainMap over the environment's and copies it key
    # by key, in Python, on every render: about 40% of routing's CPU. ENV's globals are set
    # once, in make_environment, so a plain dict of them is the same mapping, copied in C.
    template.globals = dict(template.globals)


def _check_passing(tree: _Tree) -> _Tree:
    """`tree` with each value passed on (an item's key, an argument, a literal's item) wrapped
    in the `_passed` filter, so an Undefined fails there.

    StrictUndefined fails only when it is used, and these need not use it: `dict[data.x]` is
    a GenericAlias holding it, `[data.x] | length` counts it. Filters and tests are left as
    Jinja has them, subject and arguments: `| default` and `is defined` are made for undefined
    values, and `data.phone | default(data.customer.phone)` is a fallback chain rules rely
    on. Operands fail by themselves, and the result passes reject_undefined."""

    def wrap(node: nodes.Expr | None) -> Any:
        if node is None or isinstance(node, nodes.Const | nodes.List | nodes.Tuple | nodes.Dict):
            return node  # never an Undefined (a literal's items are checked in their turn)
        return nodes.Filter(node, _PASSED, [], [], None, None, lineno=node.lineno)

    kinds = (nodes.Getitem, nodes.Slice, nodes.Call, nodes.List, nodes.Tuple, nodes.Dict)
    # Listed first, as the walk must not meet the wraps; find_all leaves out `tree` itself.
    found = [node for node in (tree, *tree.find_all(kinds)) if isinstance(node, kinds)]
    for node in found:
        if isinstance(node, nodes.Getitem):
            node.arg = node.arg if isinstance(node.arg, nodes.Slice) else wrap(node.arg)
        elif isinstance(node, nodes.Slice):
            node.start, node.stop, node.step = wrap(node.start), wrap(node.stop), wrap(node.step)
        elif isinstance(node, nodes.Call):
            node.args = [wrap(arg) for arg in node.args]
            for keyword in node.kwargs:
                keyword.value = wrap(keyword.value)
            node.dyn_args, node.dyn_kwargs = wrap(node.dyn_args), wrap(node.dyn_kwargs)
        elif isinstance(node, nodes.Dict):
            for pair in node.items:
                pair.key, pair.value = wrap(pair.key), wrap(pair.value)
        elif isinstance(node, nodes.List) or node.ctx == "load":  # not `{% for a, b in ... %}`
            node.items = [wrap(item) for item in node.items]
    tree.set_environment(ENV)
    return tree


def parse_template(source: str) -> nodes.Template:
    """`source` as ENV.parse reads it, checked where values are passed on."""
    return _check_passing(ENV.parse(source))


def parse_expression(source: str) -> nodes.Expr:
    """One expression as ENV.compile_expression reads it, checked where values are passed on."""
    parser = Parser(ENV, source, state="variable")
    try:
        expr = parser.parse_expression()
        if not parser.stream.eos:
            lineno = parser.stream.current.lineno
            raise TemplateSyntaxError("chunk after expression", lineno, None, None)
    except TemplateSyntaxError:
        ENV.handle_exception(source=source)
    return _check_passing(expr)


def _expression(source: str) -> TemplateExpression:
    """ENV.compile_expression(source, undefined_to_none=False), from the checked tree."""
    body = [nodes.Assign(nodes.Name("result", "store"), parse_expression(source), lineno=1)]
    return TemplateExpression(ENV.from_string(nodes.Template(body, lineno=1)), False)


def compile_template(source: str, *, fast: bool = True) -> Renderer:
    """Compile once per rules version; a sole `{{ expr }}` keeps its native value.

    Jinja compiles every template (so its errors are raised here, as before); the ones
    rules/fast_templates.py can evaluate render through it, the rest through Jinja. Each
    gets its own parse: Jinja's optimizer rewrites the tree it compiles.
    `fast=False` is Jinja alone: the reference the fast path is tested against."""
    sole = _SOLE_EXPRESSION.match(source)
    if sole:
        expr = _expression(sole.group("expr"))
        _plain_globals(expr._template)
        quick = (
            fast_templates.compile_expression(ENV, parse_expression(sole.group("expr")))
            if fast
            else None
        )
        if quick is not None:
            return _finalizing(quick)
        return lambda ctx: reject_undefined(expr(**ctx))
    template = ENV.from_string(parse_template(source))
    _plain_globals(template)
    quick = fast_templates.compile_template(ENV, parse_template(source)) if fast else None
    if quick is not None:
        return quick  # finalizes each `{{ }}` output as Jinja does
    return template.render  # `finalize` checks each `{{ }}` output


def compile_condition(source: str, *, fast: bool = True) -> Callable[[dict[str, Any]], bool]:
    expr = _expression(source)
    _plain_globals(expr._template)
    quick = fast_templates.compile_expression(ENV, parse_expression(source)) if fast else None
    if quick is not None:
        finalizing = _finalizing(quick)
        return lambda ctx: bool(finalizing(ctx))
    # `[data.missing]` is a non-empty list, so truthy: check before bool() hides it.
    return lambda ctx: bool(reject_undefined(expr(**ctx)))


def _finalizing(evaluate: fast_templates.Evaluate) -> Renderer:
    """`evaluate`'s value through reject_undefined (a str is never Undefined, holds none)."""

    def render(ctx: dict[str, Any]) -> Any:
        value = evaluate(ctx)
        return value if type(value) is str else reject_undefined(value)

    return render
