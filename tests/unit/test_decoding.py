"""The event decoder: every malformation has its own reason, and nothing else ever escapes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import DeadLetterReason, Event, EventError
from schemas.decoding import decode_entry, entry_size, entry_time
from tests.profiles import examples

REASONS = frozenset(
    {
        "oversized",
        "not_utf8",
        "missing_field",
        "bad_id",
        "bad_type",
        "bad_json",
        "not_object",
        "bad_time",
        "bad_specversion",
        "nul_character",
    }
)
ENTRY_ID = "1700000000123-7"
LIMIT = 65536

Raw = dict[bytes, bytes]
MakeRaw = Callable[..., Raw]


def test_every_reason_is_a_dead_letter_reason_exported_from_the_start() -> None:
    """notify_dead_letters_total starts at 0 for each DeadLetterReason (so increase() sees
    the first one); a reason outside the enum would first appear at 1."""
    assert set(DeadLetterReason) == REASONS | {"max_deliveries"}


@pytest.fixture
def make_raw() -> MakeRaw:
    """A valid entry's fields; keyword overrides replace a field, None removes it."""

    def make(**overrides: str | bytes | None) -> Raw:
        fields: dict[str, str | bytes | None] = {
            "id": "evt-1",
            "type": "shipment.delayed",
            "data": '{"shipment_id": "SHP-1", "delay_minutes": 45}',
            **overrides,
        }
        return {
            k.encode(): v if isinstance(v, bytes) else v.encode()
            for k, v in fields.items()
            if v is not None
        }

    return make


def reason_of(raw: Raw, max_bytes: int = LIMIT, entry_id: str = ENTRY_ID) -> str:
    with pytest.raises(EventError) as info:
        decode_entry(entry_id, raw, max_bytes)
    assert info.value.detail
    return info.value.reason


# --- valid entries -----------------------------------------------------------------------------


def test_a_minimal_entry_decodes(make_raw: MakeRaw) -> None:
    event = decode_entry(ENTRY_ID, make_raw(), LIMIT)
    assert event == Event(
        id="evt-1",
        type="shipment.delayed",
        data={"shipment_id": "SHP-1", "delay_minutes": 45},
        time=datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC),
    )


def test_the_default_time_is_the_stream_entrys_own_time(make_raw: MakeRaw) -> None:
    expected = datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert entry_time(ENTRY_ID) == expected
    assert decode_entry(ENTRY_ID, make_raw(), LIMIT).time == expected
    assert decode_entry("0-0", make_raw(), LIMIT).time == datetime(1970, 1, 1, tzinfo=UTC)
    # An empty `time` is the same as none.
    assert decode_entry(ENTRY_ID, make_raw(time=""), LIMIT).time == expected


def test_optional_attributes_are_kept(make_raw: MakeRaw) -> None:
    raw = make_raw(
        source="shipments-api",
        subject="SHP-1",
        specversion="1.0",
        time="2026-03-01T10:00:00+02:00",
    )
    event = decode_entry(ENTRY_ID, raw, LIMIT)
    assert (event.source, event.subject, event.specversion) == ("shipments-api", "SHP-1", "1.0")
    assert event.time == datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    assert event.time.tzinfo is UTC


def test_empty_optional_attributes_count_as_absent(make_raw: MakeRaw) -> None:
    event = decode_entry(ENTRY_ID, make_raw(source="", subject="", specversion=""), LIMIT)
    assert (event.source, event.subject, event.specversion) == (None, None, None)


def test_unknown_extra_fields_are_ignored(make_raw: MakeRaw) -> None:
    raw = make_raw(traceparent="00-abc-def-01", datacontenttype="application/json")
    raw[b"\xff\xfe-not-ours"[2:]] = b"whatever"
    event = decode_entry(ENTRY_ID, raw, LIMIT)
    assert event == decode_entry(ENTRY_ID, make_raw(), LIMIT)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02t03:04:05z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02 03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05.250Z", datetime(2026, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)),
        ("2026-01-02T03:04:05-05:30", datetime(2026, 1, 2, 8, 34, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05+00:00", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-02-29T00:00:00Z", datetime(2024, 2, 29, tzinfo=UTC)),
    ],
)
def test_rfc3339_times_are_normalised_to_utc(
    make_raw: MakeRaw, text: str, expected: datetime
) -> None:
    event = decode_entry(ENTRY_ID, make_raw(time=text), LIMIT)
    assert event.time == expected and event.time.utcoffset() == timedelta(0)


def test_an_id_of_exactly_200_characters_is_allowed(make_raw: MakeRaw) -> None:
    assert decode_entry(ENTRY_ID, make_raw(id="x" * 200), LIMIT).id == "x" * 200
    assert decode_entry(ENTRY_ID, make_raw(id="é" * 200), LIMIT).id == "é" * 200


@pytest.mark.parametrize(
    "event_type", ["order", "shipment.delayed", "a.b.c.d", "Order_Placed-v2.x", "1.2"]
)
def test_dotted_types_are_accepted(make_raw: MakeRaw, event_type: str) -> None:
    assert decode_entry(ENTRY_ID, make_raw(type=event_type), LIMIT).type == event_type


def test_an_entry_of_exactly_the_limit_is_accepted(make_raw: MakeRaw) -> None:
    raw = make_raw()
    assert decode_entry(ENTRY_ID, raw, entry_size(raw)).id == "evt-1"


# --- each malformation, with its reason ----------------------------------------------------------


@pytest.mark.parametrize("name", ["id", "type", "data"])
def test_a_missing_required_field(make_raw: MakeRaw, name: str) -> None:
    assert reason_of(make_raw(**{name: None})) == "missing_field"


@pytest.mark.parametrize("name", ["id", "type", "data"])
def test_an_empty_required_field(make_raw: MakeRaw, name: str) -> None:
    assert reason_of(make_raw(**{name: ""})) == "missing_field"


def test_an_empty_entry_is_missing_its_fields() -> None:
    assert reason_of({}) == "missing_field"


@pytest.mark.parametrize("data", ["{", "not json", "{'a': 1}", '{"a": 1,}', "{} {}", "NaN"])
def test_data_that_is_not_json(make_raw: MakeRaw, data: str) -> None:
    assert reason_of(make_raw(data=data)) == "bad_json"


@pytest.mark.parametrize("data", ["[]", "[1, 2]", '"text"', "42", "4.5", "null", "true"])
def test_data_that_is_json_but_not_an_object(make_raw: MakeRaw, data: str) -> None:
    assert reason_of(make_raw(data=data)) == "not_object"


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "1700000000",
        "2026-01-02",
        "2026-01-02T03:04:05",  # no time zone
        "2026-01-02T03:04Z",  # no seconds
        "2026-1-2T03:04:05Z",
        "2026-01-02T03:04:05+0100",
        "2026-02-30T00:00:00Z",  # impossible date
        "2025-02-29T00:00:00Z",  # not a leap year
        "2026-13-01T00:00:00Z",
        "2026-01-02T25:00:00Z",
        "2026-01-02T03:04:05+25:00",
        " 2026-01-02T03:04:05Z",
    ],
)
def test_a_bad_time(make_raw: MakeRaw, text: str) -> None:
    assert reason_of(make_raw(time=text)) == "bad_time"


def test_an_oversized_entry_counts_keys_and_values(make_raw: MakeRaw) -> None:
    raw = make_raw()
    size = entry_size(raw)
    assert size == sum(len(k) + len(v) for k, v in raw.items())
    assert reason_of(raw, max_bytes=size - 1) == "oversized"
    # Extra fields count too: the limit is on the whole entry.
    raw[b"padding"] = b"x" * LIMIT
    assert reason_of(raw) == "oversized"


def test_oversize_is_judged_before_anything_is_decoded() -> None:
    assert reason_of({b"\xff" * 10: b"\xff" * 10}, max_bytes=5) == "oversized"


def test_invalid_utf8_in_a_value_names_the_field(make_raw: MakeRaw) -> None:
    with pytest.raises(EventError) as info:
        decode_entry(ENTRY_ID, make_raw(subject=b"SHP-\xff\xfe"), LIMIT)
    assert info.value.reason == "not_utf8" and "subject" in info.value.detail


@pytest.mark.parametrize("name", ["id", "type", "data"])
def test_invalid_utf8_in_a_required_value(make_raw: MakeRaw, name: str) -> None:
    assert reason_of(make_raw(**{name: b"\xc3\x28"})) == "not_utf8"


def test_invalid_utf8_in_a_key(make_raw: MakeRaw) -> None:
    raw = make_raw()
    raw[b"extra-\xe2\x82"] = b"value"
    assert reason_of(raw) == "not_utf8"


def test_utf8_encoded_surrogates_are_not_utf8(make_raw: MakeRaw) -> None:
    assert reason_of(make_raw(data=b'{"a": "\xed\xa0\x80"}')) == "not_utf8"


def test_an_id_longer_than_200_characters(make_raw: MakeRaw) -> None:
    assert reason_of(make_raw(id="x" * 201)) == "bad_id"


@pytest.mark.parametrize(
    "event_type",
    [
        ".shipment",
        "shipment.",
        "shipment..delayed",
        "shipment delayed",
        "shipment/delayed",
        "shipment.*",
        "shipment.del?yed",
        "shipment:delayed",
        "ship\u00e9ment",
        "\tshipment",
        ".",
    ],
)
def test_a_bad_type(make_raw: MakeRaw, event_type: str) -> None:
    assert reason_of(make_raw(type=event_type)) == "bad_type"


@pytest.mark.parametrize("spec", ["0.3", "1", "1.0.0", "2.0", " 1.0"])
def test_a_bad_specversion(make_raw: MakeRaw, spec: str) -> None:
    assert reason_of(make_raw(specversion=spec)) == "bad_specversion"


def test_details_are_bounded_even_for_huge_values(make_raw: MakeRaw) -> None:
    for field in ("type", "time", "specversion"):
        with pytest.raises(EventError) as info:
            decode_entry(ENTRY_ID, make_raw(**{field: "?" * 50_000}), 10**6)
        assert len(info.value.detail) < 300, field


# --- one table of malformations (merged from the former test_event_decoding.py) -----------------

TABLE_ENTRY = "1764072000000-0"  # 2025-11-25T12:00:00Z


def fields(**values: str | bytes) -> Raw:
    base: dict[str, str | bytes] = {"id": "e1", "type": "shipment.delayed", "data": '{"a": 1}'}
    base.update(values)
    return {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in base.items()}


def test_a_valid_entry_decodes_with_defaults() -> None:
    raw = fields(subject="SHP-1", source="shipments-api", extra="x")
    assert decode_entry(TABLE_ENTRY, raw, LIMIT) == Event(
        id="e1",
        type="shipment.delayed",
        data={"a": 1},
        subject="SHP-1",
        source="shipments-api",
        time=datetime(2025, 11, 25, 12, tzinfo=UTC),
    )


def test_time_is_parsed_as_rfc3339_and_kept_in_utc() -> None:
    event = decode_entry(TABLE_ENTRY, fields(time="2026-01-02T03:04:05.5+02:00"), LIMIT)
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
        # Postgres text cannot hold NUL: stored, it would fail the whole batch's insert.
        (fields(id="e\x001"), "nul_character"),
        (fields(subject="SHP\x00"), "nul_character"),
        (fields(source="\x00"), "nul_character"),
        (fields(data='{"a": "x\\u0000"}'), "nul_character"),
        (fields(data='{"a\\u0000": 1}'), "nul_character"),
        (fields(data='{"a": [{"b": ["\\u0000"]}]}'), "nul_character"),
    ],
)
def test_each_malformation_has_its_reason(raw: Raw, expected: str) -> None:
    assert reason_of(raw, entry_id=TABLE_ENTRY) == expected


def test_an_escaped_backslash_before_u0000_is_text_not_nul() -> None:
    event = decode_entry(TABLE_ENTRY, fields(data='{"a": "\\\\u0000"}'), LIMIT)
    assert event.data == {"a": "\\u0000"}


def test_size_counts_keys_and_values() -> None:
    raw = fields(pad="x" * 100)
    size = sum(len(k) + len(v) for k, v in raw.items())
    assert reason_of(raw, max_bytes=size - 1, entry_id=TABLE_ENTRY) == "oversized"
    assert decode_entry(TABLE_ENTRY, raw, size).id == "e1"


# --- property: any bytes in, an Event or a known EventError out ---------------------------------

KNOWN_KEYS = [b"id", b"type", b"data", b"time", b"source", b"subject", b"specversion"]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
# Years 1 and 9999 are left out: with an offset they overflow on conversion to UTC.
aware_times = st.datetimes(
    min_value=datetime(1000, 1, 1), max_value=datetime(9998, 12, 31), timezones=offsets
)
valid_times = st.one_of(
    aware_times.map(lambda t: t.isoformat()),
    aware_times.map(lambda t: t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
    aware_times.map(lambda t: t.isoformat(sep=" ").lower()),
)
time_texts = st.one_of(
    valid_times,
    st.datetimes().map(lambda t: t.isoformat()),  # no time zone
    st.from_regex(r"\A\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?[Zz]\Z"),
    st.from_regex(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}\Z").filter(
        lambda s: s[:4] not in ("0001", "9999")
    ),
    st.text(max_size=40),
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=5).map(
    lambda v: json.dumps(v).encode()
)
# Text Postgres can store: no NUL (an event carrying one is a dead letter).
storable = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
storable_objects = st.dictionaries(
    st.text(storable, max_size=8),
    json_values.filter(lambda v: "\\u0000" not in json.dumps(v)),
    max_size=5,
).map(lambda v: json.dumps(v).encode())
values = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64).map(str.encode),
    json_values.map(lambda v: json.dumps(v).encode()),
    json_objects,
    time_texts.map(str.encode),
    st.sampled_from([b"", b"1.0", b"shipment.delayed", b"a..b", b"\xff", b"\xc0\x80"]),
    st.integers(1, 80_000).map(lambda n: b"x" * n),  # up to beyond the default limit
)
keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.binary(max_size=16))
entries = st.dictionaries(keys, values, max_size=10)
well_formed = st.fixed_dictionaries(
    {
        b"id": st.text(storable, min_size=1, max_size=200).map(str.encode),
        b"type": st.from_regex(r"\A[a-z0-9_-]{1,8}(\.[A-Z0-9_-]{1,8}){0,3}\Z").map(str.encode),
        b"data": storable_objects,
    },
    optional={
        b"time": valid_times.map(str.encode),
        b"specversion": st.just(b"1.0"),
        b"source": st.text(storable, max_size=20).map(str.encode),
        b"subject": st.text(storable, max_size=20).map(str.encode),
    },
)
# Realistic Redis ids (a server-assigned millisecond time and a sequence number).
entry_ids = st.builds("{}-{}".format, st.integers(0, 2**42), st.integers(0, 2**64 - 1))


def check(entry_id: str, raw: Raw, max_bytes: int) -> None:
    try:
        event = decode_entry(entry_id, raw, max_bytes)
    except EventError as exc:
        assert exc.reason in REASONS, exc.reason
        assert isinstance(exc.detail, str) and exc.detail
        return
    assert entry_size(raw) <= max_bytes
    assert isinstance(event, Event)
    assert 1 <= len(event.id) <= 200
    assert event.type and isinstance(event.data, dict)
    assert event.time.utcoffset() == timedelta(0)
    assert event.specversion in (None, "1.0")
    assert raw[b"id"].decode() == event.id


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entry_ids, entries, st.sampled_from([LIMIT, 0, 64, 1024, 10**6]))
def test_any_entry_decodes_or_is_a_known_dead_letter(
    entry_id: str, raw: Raw, max_bytes: int
) -> None:
    check(entry_id, raw, max_bytes)


@settings(max_examples=examples(300), deadline=None)
@given(entry_ids, well_formed, st.dictionaries(keys, values, max_size=3))
def test_near_valid_entries_decode_or_are_known_dead_letters(
    entry_id: str, raw: Raw, extra: Raw
) -> None:
    check(entry_id, {**extra, **raw}, LIMIT)


@settings(max_examples=examples(300), deadline=None)
@given(entry_ids, well_formed, st.dictionaries(st.text(max_size=10), st.text(max_size=10)))
def test_well_formed_entries_always_decode(
    entry_id: str, raw: Raw, unknown: dict[str, str]
) -> None:
    extra = {f"x-{k}".encode(): v.encode() for k, v in unknown.items()}
    event = decode_entry(entry_id, {**raw, **extra}, 10**6)
    assert event.id == raw[b"id"].decode()
    assert event.type == raw[b"type"].decode()
    assert event.data == json.loads(raw[b"data"])
    assert event.subject == (raw.get(b"subject", b"").decode() or None)
    assert event.source == (raw.get(b"source", b"").decode() or None)
    if b"time" in raw:
        expected = datetime.fromisoformat(raw[b"time"].decode().upper().replace(" ", "T"))
        assert event.time == expected
    else:
        assert event.time == entry_time(entry_id)


def reference_decode_fields(raw: Raw) -> dict[str, str]:
    """Field decoding as it was before one dict comprehension replaced the loop."""
    out: dict[str, str] = {}
    for key, value in raw.items():
        try:
            out[key.decode()] = value.decode()
        except UnicodeDecodeError:
            name = key.decode(errors="replace")
            raise EventError(
                DeadLetterReason.NOT_UTF8, f"field {name!r} is not valid UTF-8"
            ) from None
    return out


@settings(max_examples=examples(500), deadline=None)
@given(entries)
def test_fields_decode_and_measure_as_they_did_field_by_field(entry: Raw) -> None:
    assert entry_size(entry) == sum(len(k) + len(v) for k, v in entry.items())
    raw = {**entry, b"id": b""}  # decodes (or not) to a known dead letter either way
    try:
        expected: object = reference_decode_fields(raw)
    except EventError as exc:
        expected = (exc.reason, exc.detail)
    try:
        event = decode_entry("1-0", raw, 10**6)
    except EventError as exc:
        got: object = (exc.reason, exc.detail)
    else:
        raise AssertionError(f"an entry without an id decoded: {event}")
    if isinstance(expected, tuple):
        assert got == expected
    else:  # fields decoded: the dead letter is for the empty id, as before
        assert got == (DeadLetterReason.MISSING_FIELD, "required field 'id' is missing or empty")
