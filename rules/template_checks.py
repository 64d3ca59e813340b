"""What `rules check` finds wrong with one template or condition before any event arrives.

Pure. Everything a template could fail on for every event alike is found here, so it is a
`FILE:LINE:COL` problem of the file and never an exception in the running consumer: syntax,
constructs the sandbox refuses, filters and tests that do not exist, and whatever else Jinja
refuses while compiling.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from jinja2 import TemplateError, TemplateSyntaxError, nodes

from rules.rendering import ENV

T = TypeVar("T")
_LOADING_TAGS: dict[type[nodes.Node], str] = {
    nodes.Extends: "extends",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from",
}


@dataclass(frozen=True)
class Checked(Generic[T]):
    """A compiled template, or None and the problems that stopped it."""

    value: T | None
    problems: list[str] = field(default_factory=list)


def compiled(build: Callable[[str], T], source: str, *, expression: bool = False) -> Checked[T]:
    """`build(source)` if the template has no problem, else the problems found."""
    found = problems(source, expression=expression)
    if found:
        return Checked(None, found)
    try:
        return Checked(build(source))
    except TemplateError as exc:  # what Jinja refuses only while compiling
        return Checked(None, [describe(exc)])
    except RecursionError:
        return Checked(None, ["the template is nested too deeply"])


def problems(source: str, *, expression: bool = False) -> list[str]:
    """Every problem found in the parsed template, in the order it is written."""
    try:
        tree = ENV.parse("{{ " + source + " }}" if expression else source)
    except TemplateSyntaxError as exc:
        return [describe(exc)]
    except RecursionError:
        return ["the template is nested too deeply"]
    return [*unsafe_constructs(tree), *unknown_names(tree)]


def describe(exc: TemplateError) -> str:
    """One line for a Jinja error, with the template's own line when it has several."""
    message = exc.message or type(exc).__name__
    kind = "template syntax error" if isinstance(exc, TemplateSyntaxError) else "template error"
    lineno = getattr(exc, "lineno", 1)
    return f"{kind}: {message}" + (f" (line {lineno} of the template)" if lineno > 1 else "")


def unsafe_constructs(tree: nodes.Template) -> list[str]:
    """Attribute or item access the sandbox refuses at render time, found ahead of time."""
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
    # There are no other templates to load: each of these would fail on every event.
    for loading in tree.find_all(tuple(_LOADING_TAGS)):
        tag = _LOADING_TAGS[type(loading)]
        found.append(f"'{{% {tag} %}}' cannot be used in a rule: it has no templates to load")
    return found


def unknown_names(tree: nodes.Template) -> list[str]:
    """Filters and tests the environment does not have.

    Jinja refuses an unknown one while compiling, except inside `{% if %}` or `x if y else z`,
    where it defers the error to the render that reaches it: for a rule, an event much later."""
    found: list[str] = []
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        table: Mapping[str, Any] = ENV.filters if isinstance(node, nodes.Filter) else ENV.tests
        if node.name not in table:
            kind = "filter" if isinstance(node, nodes.Filter) else "test"
            found.append(f"unknown {kind} {node.name!r}{_suggestion(node.name, table)}")
    return found


def _suggestion(name: str, table: Mapping[str, Any]) -> str:
    known = [k for k in table if not k.startswith("_")]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.7)
    return f"; did you mean {close[0]!r}?" if close else ""
