"""`notify dlq list`: which event died, in the table and in `--json`, on fakeredis."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import fakeredis
import pytest
import redis

from cli.main import main
from notify.dead_letters import dead_letters, shorten

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


def test_replay_of_an_unknown_id_exits_1_and_replays_the_known_ones(
    client: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str]
) -> None:
    first, *_ = [entry_id.decode() for entry_id, _ in client.xrange(DLQ)]
    assert main(["dlq", "replay", first, "9-9", first]) == 1
    out, err = capsys.readouterr()
    assert out == "replayed 1 entry to events\n"
    assert err == f"notify dlq replay: no dead letter '9-9' in {DLQ}\n"
    assert client.xlen(DLQ) == 2 and client.xlen("events") == 1


def test_replay_refuses_ids_together_with_all_and_neither(
    client: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str]
) -> None:
    first = client.xrange(DLQ)[0][0].decode()
    assert main(["dlq", "replay", first, "--all"]) == 2
    assert main(["dlq", "replay"]) == 2
    assert capsys.readouterr().err.count("give dead-letter ids, or --all (not both)") == 2
    assert client.xlen(DLQ) == 3 and client.xlen("events") == 0  # nothing replayed
    assert main(["dlq", "replay", "--all"]) == 0
    assert client.xlen(DLQ) == 0 and client.xlen("events") == 3


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["bad type!", "--data", "{}"], "bad_type"),
        (["a.b", "--data", "{}", "--time", "yesterday"], "bad_time"),
        (["a.b", "--data", "{}", "--time", "2024-02-30T10:00:00Z"], "bad_time"),
        (["a.b", "--data", "{}", "--id", "x" * 201], "bad_id"),
        (["a.b", "--data", "{}", "--id", ""], "missing_field"),
        (["a.b", "--data", '{"a": "\\u0000"}'], "nul_character"),
        (["a.b", "--data", '{"a": "' + "x" * 70_000 + '"}'], "oversized"),
        (["a.b", "--data", "[1]"], "must be a JSON object, not list"),
        (["a.b", "--data", "{"], "--data is not JSON"),
        (["a.b", "--data", "@/no/such/file.json"], "No such file"),
    ],
)
def test_publish_refuses_what_the_consumer_would_dead_letter(
    client: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str], argv: list[str], why: str
) -> None:
    assert main(["publish", *argv]) == 2
    assert why in capsys.readouterr().err
    assert client.xlen("events") == 0


def test_publish_reads_data_from_a_file_or_stdin(
    client: fakeredis.FakeRedis,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from schemas.decoding import decode_entry

    payload = tmp_path / "event.json"
    payload.write_text('{"shipment_id": "SHP-1", "customer": {"name": "Zoë"}}')
    assert main(["publish", "shipment.delayed", "--data", f"@{payload}", "--id", "e1"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO('{"from": "stdin"}'))
    assert main(["publish", "shipment.delayed", "--data", "-", "--subject", "SHP-2"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [p["stream"] for p in printed] == ["events", "events"]
    (first_id, first), (_, second) = client.xrange("events")
    events = [decode_entry(first_id.decode(), fields, 65536) for fields in (first, second)]
    assert events[0].id == "e1" and events[0].data["customer"] == {"name": "Zoë"}
    assert (events[1].subject, events[1].data) == ("SHP-2", {"from": "stdin"})


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
