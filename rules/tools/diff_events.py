"""Where `notify rules diff` gets its events: a window of the stream, or a JSON-lines file.

Both go through the consumer's own decoder, so what it would dead-letter comes back as a
Undecodable with the same reason instead of an Event.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import msgspec

from notify.redis_clients import SyncRedis
from rules.tools.diff import Undecodable
from schemas import Event, EventError
from schemas.decoding import decode_entry

Item = Event | Undecodable
PAGE = 2000
_json = msgspec.json.Decoder()


def _millis(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def _decode(entry_id: str, fields: Mapping[bytes, bytes], where: str, max_bytes: int) -> Item:
    try:
        return decode_entry(entry_id, fields, max_bytes)
    except EventError as exc:
        return Undecodable(where, exc.reason, exc.detail)


def stream_window(
    client: SyncRedis,
    stream: str,
    *,
    since: timedelta,
    now: datetime,
    max_bytes: int,
    page: int = PAGE,
) -> Iterator[Item]:
    """Entries whose id (a ms timestamp) falls in [now - since, now], oldest first.

    Only XRANGE: the consumer group, its pending list and the stream are never touched.
    The upper bound is fixed at the start, so traffic arriving meanwhile does not extend it.
    """
    # An id without its sequence part means "-0" as a start and "-<max>" as an end.
    low, high = str(_millis(now - since)), str(_millis(now))
    while True:
        reply: Any = client.xrange(stream, min=low, max=high, count=page)
        for raw_id, fields in reply:
            entry_id = raw_id.decode()
            yield _decode(entry_id, fields, entry_id, max_bytes)
        if len(reply) < page:
            return
        low = "(" + reply[-1][0].decode()  # exclusive start: Redis 6.2+


def _as_field(value: Any) -> bytes:
    return (value if isinstance(value, str) else json.dumps(value)).encode()


def jsonl_file(path: str, *, now: datetime, max_bytes: int) -> Iterator[Item]:
    """One event per line (docs/interfaces.md section 1's fields, `data` as an object).

    A line without `time` gets `now`, as an entry without `time` gets its entry's time.
    Raises OSError if the file cannot be read; a bad line is a Undecodable, never an error.
    """
    base = _millis(now)
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                doc = _json.decode(line)
            except msgspec.DecodeError as exc:
                # msgspec reports bad UTF-8 as a decode error too; name it as the consumer does.
                try:
                    line.decode()
                except UnicodeDecodeError:
                    yield Undecodable(where, "not_utf8", "line is not valid UTF-8")
                    continue
                yield Undecodable(where, "bad_json", f"line is not JSON: {exc}")
                continue
            if not isinstance(doc, dict):
                kind = type(doc).__name__
                yield Undecodable(where, "not_object", f"line is JSON {kind}, not an object")
                continue
            fields = {k.encode(): _as_field(v) for k, v in doc.items() if v is not None}
            yield _decode(f"{base}-{number}", fields, where, max_bytes)
