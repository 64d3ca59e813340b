"""The Jinja2 sandbox that runs rule conditions and templates. Pure: no I/O."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import StrictUndefined, Template, Undefined, nodes
from jinja2.sandbox import SandboxedEnvironment

from consumer import fast_templates
from notify.logs import mask

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


def make_environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, finalize=reject_undefined
    )
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


def compile_template(source: str, *, fast: bool = True) -> Renderer:
    """Compile once per rules version; a sole `{{ expr }}` keeps its native value.

    Jinja compiles every template (so its errors are raised here, as before); the ones
    consumer/fast_templates.py can evaluate render through it, the rest through Jinja.
    `fast=False` is Jinja alone: the reference the fast path is tested against."""
    sole = _SOLE_EXPRESSION.match(source)
    if sole:
        expr = ENV.compile_expression(sole.group("expr"), undefined_to_none=False)
        _plain_globals(expr._template)
        quick = fast_templates.compile_expression(ENV, sole.group("expr")) if fast else None
        if quick is not None:
            return _finalizing(quick)
        return lambda ctx: reject_undefined(expr(**ctx))
    template = ENV.from_string(source)
    _plain_globals(template)
    quick = fast_templates.compile_template(ENV, source) if fast else None
    if quick is not None:
        return quick  # finalizes each `{{ }}` output as Jinja does
    return template.render  # `finalize` checks each `{{ }}` output


def compile_condition(source: str, *, fast: bool = True) -> Callable[[dict[str, Any]], bool]:
    expr = ENV.compile_expression(source, undefined_to_none=False)
    _plain_globals(expr._template)
    quick = fast_templates.compile_expression(ENV, source) if fast else None
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


def unsafe_constructs(source: str, *, expression: bool = False) -> list[str]:
    """Attribute or item access the sandbox refuses at render time, found ahead of time."""
    tree = ENV.parse("{{ " + source + " }}" if expression else source)
    found: list[str] = []
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        name: object = node.attr if isinstance(node, nodes.Getattr) else None
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value
        if isinstance(name, str) and name.startswith("_"):
            found.append(f"access to {name!r} is not allowed in the sandbox")
    # `self` exposes the template object and its blocks; rules never need it.
    if any(n.name == "self" for n in tree.find_all(nodes.Name)):
        found.append("access to 'self' is not allowed in the sandbox")
    return found
