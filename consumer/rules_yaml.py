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
