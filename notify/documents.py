"""The consumer's batch as one JSON document: its columns, declared once.

`COLUMNS` names each column of `notifications` the document carries, its short key (short
keys keep the document small), its type in the statement's record definition and in Python.
statements.INSERT's column list, record definition and aliases are built from it, and so is
`Row`, the msgspec struct each notification is encoded as.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from notify.globs import translate
from schemas import Channel, NewNotification, PushId, Status


@dataclass(frozen=True)
class Column:
    name: str  # the column of `notifications`, and the NewNotification field it comes from
    key: str
    sql: str
    kind: Any


COLUMNS: tuple[Column, ...] = (
    Column("idempotency_key", "k", "text", str),
    Column("event_id", "e", "text", str),
    Column("event_type", "t", "text", str),
    Column("event_subject", "s", "text", str),
    Column("rule", "r", "text", str),
    Column("channel", "c", "text", Channel),
    Column("recipient", "rc", "text", str),
    Column("title", "ti", "text", str),
    Column("body", "b", "text", str),
    Column("data", "d", "jsonb", dict[str, str]),
    Column("status", "st", "text", Status),
    Column("send_at", "sa", "timestamptz", datetime),
    Column("cancel_on", "co", "text[]", list[str]),
    Column("error_code", "ec", "text", str),
    Column("error_message", "em", "text", str),
    Column("rules_version", "rv", "text", str),
    Column("event_time", "et", "timestamptz", datetime),
    Column("push_id", "pi", "text", PushId),
    Column("segments", "sg", "int", int),
    Column("encoding", "en", "text", str),
    Column("country", "cc", "text", str),
    # Not a NewNotification field: the cancel_on globs as regexes Postgres reads (last).
    Column("cancel_patterns", "cp", "text[]", list[str]),
)

KEYS = {c.name: c.key for c in COLUMNS}

# An absent field is null (the record definition names every column); enums encode as
# their values.
Row: Any = msgspec.defstruct(
    "Row",
    [(c.name, c.kind | None, msgspec.field(default=None, name=c.key)) for c in COLUMNS],
    omit_defaults=True,
)

# Every field but the last, read in C in COLUMNS order: a row is built positionally.
_fields = operator.attrgetter(*(c.name for c in COLUMNS[:-1]))
_encode = msgspec.json.Encoder().encode


def record_definition() -> str:
    """`json_to_recordset(...) AS (k text, e text, ...)`."""
    return ", ".join(f"{c.key} {c.sql}" for c in COLUMNS)


def document(rows: Sequence[NewNotification]) -> bytes:
    """The batch as statements.INSERT's JSON parameter."""
    return _encode(
        [
            Row(*_fields(n), [translate(p) for p in n.cancel_on] if n.cancel_on else None)
            for n in rows
        ]
    )
