"""The templates rules are made of, evaluated without building a Jinja context. Pure.

Jinja renders a template by building a `Context` for it (a dict of the globals and the
variables, an `EvalContext`, a set of the globals' names) and running a generator over it:
that set-up cost more than the work in the templates rules are written in, which are text
with `{{ data.customer.name }}`, a filter or two, and conditions like
`data.delay_minutes >= 30`. `compile_template` and `compile_expression` turn a template or
expression made only of the nodes below into closures over the parsed tree that do, in the
same order, exactly what Jinja's generated code does with the same environment:

- a name: the variable, else the global, else `env.undefined(name=...)`;
- `a.b` and `a[b]`: `env.getattr` / `env.getitem`, the sandbox's own checks. The one
  shortcut: for a plain `dict` and a name that is not an attribute of `dict`, Python's
  `getattr` can only raise, so the value is the item when the key is there (what the
  sandbox returns then); anything else still goes through `env.getattr`;
- filters and tests (the environment's functions, `pass_environment` ones included; ones
  that take the context or the eval context are not handled here);
- constants, `==` and the other comparisons, `and`, `or`, `not`, `~`, `+ - * / // %`,
  list and tuple literals, and output through the environment's `finalize`.

Both take a tree rules/rendering.py parsed (and checked where values are passed on), as
Jinja compiles it.

No call (`x()`), no statement, and so nothing the sandbox forbids becomes reachable; any
other node makes these functions return None, and Jinja renders the template as before.
tests/unit/test_fast_templates.py holds both paths to the same values and errors.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, cast

from jinja2 import nodes
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import _PassArg

Evaluate = Callable[[dict[str, Any]], Any]

_MISSING = object()
# What `getattr(d, name)` finds on a dict instance: the attributes of dict and object. A
# dict has no instance attributes, so for any other name `getattr` raises AttributeError.
_DICT_ATTRIBUTES = frozenset(dir(dict))
# Names Jinja's code generator treats specially, or the expression wrapper itself uses.
_SPECIAL_NAMES = frozenset({"self", "result"})
# Types whose `finalize` (rendering.reject_undefined) is the identity: neither Undefined nor
# a container that could hold one.
_PLAIN = frozenset({str, int, float, bool, type(None)})

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gteq": operator.ge,
    "lt": operator.lt,
    "lteq": operator.le,
    "in": lambda a, b: a in b,
    "notin": lambda a, b: a not in b,
}
_BINARY: dict[type[nodes.BinExpr], Callable[[Any, Any], Any]] = {
    nodes.Add: operator.add,
    nodes.Sub: operator.sub,
    nodes.Mul: operator.mul,
    nodes.Div: operator.truediv,
    nodes.FloorDiv: operator.floordiv,
    nodes.Mod: operator.mod,
}


class Unsupported(Exception):
    """A node these closures do not reproduce: Jinja renders the template."""


def compile_template(env: SandboxedEnvironment, tree: nodes.Template) -> Evaluate | None:
    """`tree` rendered to text as `Template.render` would, or None if unsupported."""
    try:
        return _Compiler(env).template(tree)
    except Unsupported:
        return None


def compile_expression(env: SandboxedEnvironment, expr: nodes.Expr) -> Evaluate | None:
    """`expr`'s value as Jinja's compiled expression gives it, or None if unsupported."""
    try:
        return _Compiler(env).expr(expr)
    except Unsupported:
        return None


class _Compiler:
    def __init__(self, env: SandboxedEnvironment) -> None:
        self.env = env

    def template(self, tree: nodes.Template) -> Evaluate:
        parts: list[str | Evaluate] = []
        for node in tree.body:
            if not isinstance(node, nodes.Output):
                raise Unsupported(type(node).__name__)
            for child in node.nodes:
                if isinstance(child, nodes.TemplateData):
                    parts.append(child.data)
                else:
                    path = self._path(child, output=True)
                    parts.append(path if path is not None else self._output(self.expr(child)))
        return _concat(parts)

    def _finalize(self) -> Callable[[Any], Any]:
        if self.env.finalize is None:
            raise Unsupported("no finalize")
        return self.env.finalize

    def _output(self, evaluate: Evaluate) -> Evaluate:
        """`str(env.finalize(value))`, what Jinja writes for each `{{ }}`."""
        finalize, plain = self._finalize(), _PLAIN

        def output(ctx: dict[str, Any]) -> str:
            value = evaluate(ctx)
            return str(value) if type(value) in plain else str(finalize(value))

        return output

    def expr(self, node: nodes.Node) -> Evaluate:  # noqa: PLR0911 - one branch per node type
        if isinstance(node, nodes.Name | nodes.Getattr | nodes.Getitem):
            path = self._path(node)
            if path is not None:
                return path
        if isinstance(node, nodes.Getattr):
            return self._getattr(self.expr(node.node), node.attr)
        if isinstance(node, nodes.Getitem):
            if isinstance(node.arg, nodes.Slice):
                raise Unsupported("slice")
            return self._getitem(self.expr(node.node), self.expr(node.arg))
        if isinstance(node, nodes.Const):
            value = node.value
            return lambda ctx: value
        if isinstance(node, nodes.Filter | nodes.Test):
            return self._call(node)
        if isinstance(node, nodes.Compare):
            return self._compare(node)
        if isinstance(node, nodes.And | nodes.Or | nodes.Not | nodes.Concat):
            return self._logic(node)
        if type(node) in _BINARY:
            return self._binary(node)  # type: ignore[arg-type]
        if isinstance(node, nodes.List | nodes.Tuple):
            items = [self.expr(item) for item in node.items]
            if isinstance(node, nodes.List):
                return lambda ctx: [item(ctx) for item in items]
            return lambda ctx: tuple([item(ctx) for item in items])
        raise Unsupported(type(node).__name__)

    def _name(self, name: str) -> Evaluate:
        if name in _SPECIAL_NAMES:
            raise Unsupported(name)
        env = self.env
        # Jinja's context: the variables over the globals, else an undefined named so.
        globals_ = env.globals

        def load(ctx: dict[str, Any]) -> Any:
            value = ctx.get(name, _MISSING)
            if value is _MISSING:
                value = globals_.get(name, _MISSING)
                if value is _MISSING:
                    return env.undefined(name=name)
            return value

        return load

    def _path(self, node: nodes.Node, *, output: bool = False) -> Evaluate | None:
        """`name.a.b['c'][0]`, the common case, as one closure walking the steps (and, for
        `output`, writing the value as `_output` does)."""
        steps: list[tuple[int, Any]] = []
        while isinstance(node, nodes.Getattr | nodes.Getitem):
            if isinstance(node, nodes.Getattr):
                lane = 1 if node.attr in _DICT_ATTRIBUTES else 0
                steps.append((lane, node.attr))
            elif isinstance(node.arg, nodes.Const):
                steps.append((2, node.arg.value))
            else:
                return None
            node = node.node
        if not isinstance(node, nodes.Name):
            return None
        if not steps and not output:
            return self._name(node.name)
        self._name(node.name)  # refuses the special names
        name, globals_, undefined = node.name, self.env.globals, self.env.undefined
        steps.reverse()
        walk = tuple(steps)
        getattr_, getitem = self.env.getattr, self.env.getitem
        finalize, plain = (self._finalize(), _PLAIN) if output else (None, frozenset())

        def path(ctx: dict[str, Any]) -> Any:
            value = ctx.get(name, _MISSING)  # as _name's load, inline: this is the hot path
            if value is _MISSING:
                value = globals_.get(name, _MISSING)
                if value is _MISSING:
                    value = undefined(name=name)
            for lane, key in walk:
                if lane == 0:  # an attribute name no dict has
                    if type(value) is dict:
                        found = value.get(key, _MISSING)
                        if found is not _MISSING:
                            value = found
                            continue
                    value = getattr_(value, key)
                elif lane == 1:
                    value = getattr_(value, key)
                else:
                    value = getitem(value, key)
            if finalize is None:
                return value
            return str(value) if type(value) in plain else str(finalize(value))

        return path

    def _getattr(self, evaluate: Evaluate, attr: str) -> Evaluate:
        getattr_ = self.env.getattr
        return lambda ctx: getattr_(evaluate(ctx), attr)

    def _getitem(self, evaluate: Evaluate, arg: Evaluate) -> Evaluate:
        getitem = self.env.getitem
        return lambda ctx: getitem(evaluate(ctx), arg(ctx))

    def _call(self, node: nodes.Filter | nodes.Test) -> Evaluate:
        """A filter or test: `f(value, *args, **kwargs)`, as Jinja's generated code calls it."""
        if node.dyn_args is not None or node.dyn_kwargs is not None or node.node is None:
            raise Unsupported("dynamic arguments")
        table = self.env.filters if isinstance(node, nodes.Filter) else self.env.tests
        found = table.get(node.name)
        if found is None:
            raise Unsupported(f"unknown {node.name}")
        func = cast(Callable[..., Any], found)
        passed = _PassArg.from_obj(func)
        if passed not in (None, _PassArg.environment):
            raise Unsupported(f"{node.name} takes the context")
        subject = self.expr(node.node)
        args = [self.expr(a) for a in node.args]
        kwargs = [(str(k.key), self.expr(k.value)) for k in node.kwargs]
        lead = (self.env,) if passed is _PassArg.environment else ()

        if not args and not kwargs:
            if lead:
                env = self.env
                return lambda ctx: func(env, subject(ctx))
            return lambda ctx: func(subject(ctx))

        def call(ctx: dict[str, Any]) -> Any:
            value = subject(ctx)
            positional = [a(ctx) for a in args]
            named = {key: v(ctx) for key, v in kwargs}
            return func(*lead, value, *positional, **named)

        return call

    def _compare(self, node: nodes.Compare) -> Evaluate:
        first = self.expr(node.expr)
        ops = [(_COMPARE[op.op], self.expr(op.expr)) for op in node.ops]
        if len(ops) == 1:
            ((compare, second),) = ops
            return lambda ctx: compare(first(ctx), second(ctx))

        def chain(ctx: dict[str, Any]) -> Any:
            # Python's `a < b < c`: `b` evaluated once, stop at the first false comparison.
            left = first(ctx)
            result: Any = True
            for index, (compare, operand) in enumerate(ops):
                if index and not result:
                    return result
                right = operand(ctx)
                result = compare(left, right)
                left = right
            return result

        return chain

    def _logic(self, node: nodes.And | nodes.Or | nodes.Not | nodes.Concat) -> Evaluate:
        if isinstance(node, nodes.Not):
            operand = self.expr(node.node)
            return lambda ctx: not operand(ctx)
        if isinstance(node, nodes.Concat):
            items = [self.expr(item) for item in node.nodes]
            # Jinja's str_join: every operand evaluated, then each turned to text.
            return lambda ctx: "".join(map(str, [item(ctx) for item in items]))
        left, right = self.expr(node.left), self.expr(node.right)
        if isinstance(node, nodes.And):
            return lambda ctx: left(ctx) and right(ctx)
        return lambda ctx: left(ctx) or right(ctx)

    def _binary(self, node: nodes.BinExpr) -> Evaluate:
        if node.operator in self.env.intercepted_binops:
            raise Unsupported(f"intercepted {node.operator}")
        apply, left, right = _BINARY[type(node)], self.expr(node.left), self.expr(node.right)
        return lambda ctx: apply(left(ctx), right(ctx))


def _concat(parts: list[str | Evaluate]) -> Evaluate:
    """The template's text: literals as they are, outputs in order (the first error wins)."""
    merged: list[str | Evaluate] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] = merged[-1] + part
        else:
            merged.append(part)
    if not merged:
        return lambda ctx: ""
    if len(merged) == 1:
        only = merged[0]
        if isinstance(only, str):
            return lambda ctx: only
        return only
    fixed = tuple(merged)

    def render(ctx: dict[str, Any]) -> str:
        return "".join([p if type(p) is str else p(ctx) for p in fixed])  # type: ignore[operator]

    return render
