"""`notify dlq list`: which event died, in the table and in `--json`, on fakeredis."""

from __future__ import annotations

import json
from collections.abc import Iterator

import fakeredis
import pytest
import redis

from cli.main import main
from consumer.dead_letters import dead_letters, shorten

DLQ = "events.dlq"
LONG_ID = "order-service-" + "x" * 170 + "-tail-0042"


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[fakeredis.FakeRedis]:
    fake = fakeredis.FakeRedis()
    monkeypatch.setattr(redis.Redis, "from_url", lambda *a, **k: fake)
    monkeypatch.setenv("NOTIFY_STREAM", "events")
    for n, (event_id, event_type, reason) in enumerate(
        (
            (b"evt-1", b"shipment.delayed", b"bad_json"),
            (LONG_ID.encode(), b"order.dispatched.to.a.very.long.warehouse.name", b"not_object"),
            (None, b"\x1b[31mshipment.delayed", b"missing_field"),
        ),
        start=1,
    ):
        fields = {b"data": b"{", b"_dlq_reason": reason, b"_dlq_detail": b"why"}
        entry = f"{n}-0".encode()
        fields.update({b"_dlq_entry_id": entry, b"_dlq_deliveries": b"1", b"_dlq_time": b"1"})
        if event_id is not None:
            fields[b"id"] = event_id
        fields[b"type"] = event_type
        fake.xadd(DLQ, fields)  # type: ignore[arg-type]
    yield fake
    fake.close()


def test_the_table_names_each_events_id_and_type(
    client: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dlq", "list"]) == 0
    header, first, second, third, footer = capsys.readouterr().out.splitlines()
    assert header.split()[:6] == ["DLQ", "ID", "ENTRY", "ID", "EVENT", "ID"]
    assert "TYPE" in header
    assert first.split()[2:5] == ["evt-1", "shipment.delayed", "bad_json"]
    event_id, event_type = second.split()[2:4]
    assert event_id == "order-servi…xx-tail-0042" and len(event_id) == 24
    assert event_type == "order.dispatched.to.a.v…"
    assert third.split()[2:4] == ["-", "\\x1b[31mshipment.delayed"]
    assert "\x1b" not in third  # an event's bytes never reach the terminal raw
    assert footer == f"3 dead letter(s) in {DLQ}"
    # The columns line up whatever the ids' lengths.
    starts = {first.index("shipment"), second.index("order.d"), third.index("\\x1b")}
    assert starts == {header.index("TYPE")}


def test_json_keeps_everything_in_full_and_adds_event_id_and_type(
    client: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dlq", "list", "--json"]) == 0
    letters = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["event_id"], d["type"]) for d in letters] == [
        ("evt-1", "shipment.delayed"),
        (LONG_ID, "order.dispatched.to.a.very.long.warehouse.name"),
        (None, "\x1b[31mshipment.delayed"),
    ]
    assert set(letters[0]) == {"id", "entry_id", "event_id", "type", "reason", "detail",
                               "deliveries"}  # fmt: skip
    assert (letters[0]["entry_id"], letters[0]["reason"], letters[0]["deliveries"]) == (
        "1-0",
        "bad_json",
        1,
    )


@pytest.mark.parametrize(
    ("text", "width", "middle", "expected"),
    [
        ("short", 8, False, "short"),
        ("abcdefghij", 6, False, "abcde…"),
        ("abcdefghij", 6, True, "ab…hij"),
        (None, 6, True, "-"),
        ("a\nb", 8, False, "a\\nb"),
    ],
)
def test_shorten(text: str | None, width: int, middle: bool, expected: str) -> None:
    assert shorten(text, width, middle=middle) == expected


def test_an_entry_dead_lettered_twice_is_listed_and_replayed_once(
    client: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str]
) -> None:
    """A consumer that dies between dead-lettering an entry and acknowledging it leaves a
    second copy when the entry is delivered again: one dead letter to list and replay."""
    again = {b"id": b"evt-1", b"type": b"shipment.delayed", b"data": b"{"}
    again.update({b"_dlq_reason": b"bad_json", b"_dlq_detail": b"why", b"_dlq_entry_id": b"1-0"})
    copy = client.xadd(DLQ, again).decode()  # type: ignore[arg-type, union-attr]
    assert client.xlen(DLQ) == 4
    entries = dead_letters(client, DLQ)
    assert [e.original_id for e in entries] == ["1-0", "2-0", "3-0"]
    assert entries[0].copies == (copy,)
    assert main(["dlq", "replay", copy]) == 0  # either copy's id names the dead letter
    assert "replayed 1 entry" in capsys.readouterr().out
    assert [f[b"id"] for _, f in client.xrange("events")] == [b"evt-1"]  # type: ignore[union-attr]
    assert {f[b"_dlq_entry_id"] for _, f in client.xrange(DLQ)} == {b"2-0", b"3-0"}  # type: ignore[union-attr]
