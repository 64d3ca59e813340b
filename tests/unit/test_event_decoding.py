"""Decoding stream entries: every malformation has its reason; nothing else ever escapes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.decoding import decode_entry
from schemas import Event, EventError

ENTRY = "1764072000000-0"  # 2025-11-25T12:00:00Z
REASONS = {"oversized", "not_utf8", "missing_field", "bad_id", "bad_type", "bad_json",
           "not_object", "bad_time", "bad_specversion"}  # fmt: skip


def fields(**values: str | bytes) -> dict[bytes, bytes]:
    base: dict[str, str | bytes] = {"id": "e1", "type": "shipment.delayed", "data": '{"a": 1}'}
    base.update(values)
    return {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in base.items()}


def reason(raw: dict[bytes, bytes], max_bytes: int = 65536) -> str:
    with pytest.raises(EventError) as info:
        decode_entry(ENTRY, raw, max_bytes)
    return info.value.reason


def test_a_valid_entry_decodes_with_defaults() -> None:
    event = decode_entry(ENTRY, fields(subject="SHP-1", source="shipments-api", extra="x"), 65536)
    assert event == Event(
        id="e1",
        type="shipment.delayed",
        data={"a": 1},
        subject="SHP-1",
        source="shipments-api",
        time=datetime(2025, 11, 25, 12, tzinfo=UTC),
    )


def test_time_is_parsed_as_rfc3339_and_kept_in_utc() -> None:
    event = decode_entry(ENTRY, fields(time="2026-01-02T03:04:05.5+02:00"), 65536)
    assert event.time == datetime(2026, 1, 2, 1, 4, 5, 500000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({b"type": b"t", b"data": b"{}"}, "missing_field"),
        (fields(id=""), "missing_field"),
        (fields(type=""), "missing_field"),
        ({b"id": b"x", b"type": b"t"}, "missing_field"),
        (fields(data="not json"), "bad_json"),
        (fields(data="[1, 2]"), "not_object"),
        (fields(data='"text"'), "not_object"),
        (fields(data="42"), "not_object"),
        (fields(data="null"), "not_object"),
        (fields(time="yesterday"), "bad_time"),
        (fields(time="2026-01-02T03:04:05"), "bad_time"),  # no offset
        (fields(time="2026-02-30T00:00:00Z"), "bad_time"),  # no such day
        (fields(id="x" * 201), "bad_id"),
        (fields(type="shipment delayed"), "bad_type"),
        (fields(type=".delayed"), "bad_type"),
        (fields(specversion="0.3"), "bad_specversion"),
        (fields(data=b'{"a": "\xff"}'), "not_utf8"),
        ({b"\xfe": b"x", **fields()}, "not_utf8"),
    ],
)
def test_each_malformation_has_its_reason(raw: dict[bytes, bytes], expected: str) -> None:
    assert reason(raw) == expected


def test_size_counts_keys_and_values() -> None:
    raw = fields(pad="x" * 100)
    size = sum(len(k) + len(v) for k, v in raw.items())
    assert reason(raw, max_bytes=size - 1) == "oversized"
    assert decode_entry(ENTRY, raw, size).id == "e1"


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.binary(max_size=12), st.binary(max_size=300), max_size=8))
def test_any_bytes_are_an_event_or_a_dead_letter(raw: dict[bytes, bytes]) -> None:
    try:
        decode_entry(ENTRY, raw, 1024)
    except EventError as exc:
        assert exc.reason in REASONS


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    event_id=st.text(max_size=250),
    event_type=st.text(max_size=40),
    data=json_values,
    time=st.none()
    | st.text(max_size=40)
    | st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
)
def test_structured_inputs_never_raise_anything_else(
    event_id: str, event_type: str, data: object, time: str | None
) -> None:
    raw = {
        b"id": event_id.encode(),
        b"type": event_type.encode(),
        b"data": json.dumps(data).encode(),
    }
    if time is not None:
        raw[b"time"] = time.encode()
    try:
        event = decode_entry(ENTRY, raw, 65536)
    except EventError as exc:
        assert exc.reason in REASONS
    else:
        assert isinstance(event.data, dict) and event.time.tzinfo is not None
