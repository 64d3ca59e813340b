"""Read a rules file into plain data plus the line:col of every key and value."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    """SafeLoader where only true/false are booleans, so `on:` stays the string 'on'."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass
class Document:
    """Parsed YAML with positions; positions are 1-based (line, column)."""

    value: Any
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    problems: list[tuple[int, int, str]] = field(default_factory=list)

    def where(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """Closest known position for a path: the key itself, else its value, else a parent."""
        while True:
            table = self.key_positions if key else self.positions
            if path in table:
                return table[path]
            if path in self.positions:
                return self.positions[path]
            if not path:
                return (1, 1)
            path = path[:-1]


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _walk(node: yaml.Node, path: Path, doc: Document) -> None:
    doc.positions[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                line, col = _mark(key_node)
                doc.problems.append((line, col, f"duplicate key {key!r}"))
            seen.add(key)
            doc.key_positions[(*path, key)] = _mark(key_node)
            _walk(value_node, (*path, key), doc)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), doc)


# What to do about PyYAML's commonest complaints, in words product staff use.
_HINTS = (
    ("expected <block end>", "is this line indented like the lines of its block?"),
    ("mapping values are not allowed here", "quote a value that contains ': '"),
    ("found character '\\t'", "indent with spaces, not tabs"),
    ("expected ',' or ']'", "is a ']' missing?"),
    ("expected ',' or '}'", "is a '}' missing?"),
)


def syntax_error(exc: yaml.MarkedYAMLError, text: str) -> tuple[int, int, str]:
    """(line, column, message) for a YAML syntax error, pointing where the mistake is.

    PyYAML gives two marks. The problem mark is where parsing failed: for a badly indented
    key, that key. The context mark is where the enclosing construct began (the block
    collection above it), so it only goes into the message, as a hint. The exception is a
    problem at the very end of the text (an unclosed quote or bracket): there the context
    mark, where the unclosed thing starts, is the place to fix."""
    problem = str(exc.problem or exc)
    where, context = exc.problem_mark, exc.context_mark
    if context is not None and (where is None or where.index >= len(text)):
        return context.line + 1, context.column + 1, f"{exc.context}: {problem}"
    line, col = (where.line + 1, where.column + 1) if where else (1, 1)
    message = problem
    if exc.context and context is not None and (context.line, context.column) != (line, col):
        message += f" ({exc.context} at {context.line + 1}:{context.column + 1})"
    hint = next((h for start, h in _HINTS if problem.startswith(start)), None)
    return line, col, f"{message}; {hint}" if hint else message


def position(text: str, index: int) -> tuple[int, int]:
    """The 1-based (line, column) of character `index` of `text`."""
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


def parse(text: str) -> Document:
    """Parse YAML text; a syntax error raises yaml.MarkedYAMLError (it carries the mark)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return Document(value=None)
        doc = Document(value=loader.construct_document(node))
        _walk(node, (), doc)
        return doc
    finally:
        loader.dispose()
