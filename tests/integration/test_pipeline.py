"""The whole path for real: stream -> consumer -> Postgres -> Celery worker -> SDK -> emulator."""

from __future__ import annotations

import json
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from sandbox import Sandbox
from sandbox.google.identifiers import installation_id
from tests.integration import processes
from tests.integration.helpers import RULES, publish, push_token, rows, shipment

pytestmark = pytest.mark.integration


def test_events_become_exactly_the_expected_sms_and_pushes(
    running: dict[str, str], redis_client: redis.Redis, sandbox: Sandbox, database_url: str
) -> None:
    stream = running["NOTIFY_STREAM"]
    for n in range(1, 11):
        publish(
            redis_client,
            stream,
            f"evt-{stream}-{n}",
            "shipment.delayed",
            shipment(n, delay=45 if n <= 6 else 10, tokens=2),
            subject=f"SHP-{n}",
        )
    # 6 events pass the SMS condition; all 10 push to 2 tokens each.
    sandbox.wait_for(6 + 20, timeout=30)
    sms = sandbox.messages("sms")
    pushes = sandbox.messages("push")
    assert Counter(m.to for m in sms) == Counter(f"+1415555{n:04d}" for n in range(1, 7))
    assert Counter(m.to for m in pushes) == Counter(
        push_token(n, i) for n in range(1, 11) for i in range(2)
    )
    assert {m.body for m in sms} == {
        f"Hi Customer {n}, shipment SHP-{n} is 45 min late." for n in range(1, 7)
    }
    assert all(m.title == "Shipment delayed" and m.sender is None for m in pushes)
    assert all(m.sender == running["TWILIO_PHONE_NUMBER"] for m in sms)

    stored = rows(database_url, "event_id LIKE $1", f"evt-{stream}-%")
    processes.wait_until(
        lambda: all(
            r["status"] == "sent" for r in rows(database_url, "event_id LIKE $1", f"evt-{stream}-%")
        ),
        message="all rows sent",
    )
    stored = rows(database_url, "event_id LIKE $1", f"evt-{stream}-%")
    assert len(stored) == 26
    assert {r["provider_message_id"] for r in stored} == {m.id for m in sms + pushes}
    assert all(r["attempts"] == 1 for r in stored)


def test_an_event_published_twice_is_sent_once(
    running: dict[str, str], redis_client: redis.Redis, sandbox: Sandbox, database_url: str
) -> None:
    stream = running["NOTIFY_STREAM"]
    data = shipment(77, tokens=0)
    for _ in range(3):
        publish(redis_client, stream, f"dup-{stream}", "shipment.delayed", data)
    publish(redis_client, stream, f"after-{stream}", "shipment.delayed", shipment(78, tokens=0))
    sandbox.wait_for(2, timeout=30)
    processes.wait_until(
        lambda: (
            [r["status"] for r in rows(database_url, "event_id = $1", f"after-{stream}")]
            == ["sent"]
        ),
        message="the later event to be sent",
    )
    assert sorted(m.to for m in sandbox.messages("sms")) == ["+14155550077", "+14155550078"]
    assert len(rows(database_url, "event_id = $1", f"dup-{stream}")) == 1


def test_malformed_entries_are_dead_lettered_and_the_consumer_carries_on(
    running: dict[str, str], redis_client: redis.Redis, sandbox: Sandbox
) -> None:
    stream = running["NOTIFY_STREAM"]
    bad = [
        {"type": "shipment.delayed", "data": "{}"},  # no id
        {"id": "b2", "type": "shipment.delayed", "data": "not json"},
        {"id": "b3", "type": "shipment.delayed", "data": "[1, 2]"},
        {"id": "b4", "type": "shipment.delayed", "data": "{}", "time": "yesterday"},
        {"id": "b5", "type": "shipment.delayed", "data": "{}", "pad": "x" * 70_000},
        {"id": b"b6", "type": b"shipment.delayed", "data": b'{"a": "\xff"}'},
        # NUL, which Postgres text cannot hold: stored, it failed its whole batch's insert.
        {"id": "b7\x00", "type": "shipment.delayed", "data": "{}"},
        {
            "id": "b8",
            "type": "shipment.delayed",
            "data": json.dumps(dict(shipment(90), name="\x00")),
        },
    ]
    for fields in bad:
        redis_client.xadd(stream, fields)  # type: ignore[arg-type]
    publish(redis_client, stream, f"good-{stream}", "shipment.delayed", shipment(90, tokens=0))
    sandbox.wait_for(1, timeout=30)
    dlq = f"{stream}.dlq"
    processes.wait_until(lambda: redis_client.xlen(dlq) == len(bad), message="dead letters")
    reasons = [f[b"_dlq_reason"].decode() for _, f in redis_client.xrange(dlq)]
    assert reasons == [
        "missing_field",
        "bad_json",
        "not_object",
        "bad_time",
        "oversized",
        "not_utf8",
        "nul_character",
        "nul_character",
    ]
    group = redis_client.xinfo_groups(stream)[0]
    processes.wait_until(
        lambda: redis_client.xinfo_groups(stream)[0]["pending"] == 0,
        message="everything acknowledged",
    )
    assert group["name"] == b"notifications"


def test_sigterm_finishes_and_exits_zero(
    pipeline_env: dict[str, str],
    rules_file: Callable[[str], Path],
    procs: processes.Start,
    tmp_path: Path,
    redis_client: redis.Redis,
) -> None:
    rules_file(RULES)
    consumer = procs(processes.consumer(pipeline_env, tmp_path))
    consumer.wait_for_log("consumer started")
    stream = pipeline_env["NOTIFY_STREAM"]
    for n in range(200):
        publish(redis_client, stream, f"term-{stream}-{n}", "shipment.delayed", shipment(n))
    assert consumer.stop(signal.SIGTERM) == 0
    assert "consumer stopped" in consumer.log()
    # Whatever it read, it acknowledged: nothing is left pending on the group.
    assert redis_client.xinfo_groups(stream)[0]["pending"] == 0


def test_a_registration_token_goes_out_as_token_and_an_installation_id_as_fid(
    start_pipeline: processes.StartPipeline,
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    pipe = start_pipeline(
        """
rules:
  - name: app-tokens
    on: device.update
    channel: push
    to: "{{ data.tokens }}"
    body: "via token"
  - name: app-installations
    on: device.update
    channel: push
    push_id: fid
    to: "{{ data.fids }}"
    body: "via fid"
"""
    )
    token, fid = push_token(5), installation_id("customer-5")
    stream = pipe.env["NOTIFY_STREAM"]
    publish(redis_client, stream, f"ids-{stream}", "device.update",
            {"tokens": [token], "fids": [fid]})  # fmt: skip
    sandbox.wait_for(2, timeout=30, channel="push")
    sent = {m.body: m.payload for m in sandbox.messages("push")}
    assert (sent["via token"].get("token"), sent["via token"].get("fid")) == (token, None)
    assert (sent["via fid"].get("fid"), sent["via fid"].get("token")) == (fid, None)
    processes.wait_until(
        lambda: (
            [r["status"] for r in rows(database_url, "event_id = $1", f"ids-{stream}")]
            == ["sent", "sent"]
        ),
        message="both rows sent",
    )
    stored = rows(database_url, "event_id = $1", f"ids-{stream}")
    assert {(r["recipient"], r["push_id"]) for r in stored} == {(token, "token"), (fid, "fid")}
