"""Suppressions for real: consumer, Celery worker, beat, the SDKs against the emulator, and
the `notify suppressions` command line."""

from __future__ import annotations

import asyncio
import getpass
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis

from notify import suppressions
from sandbox import Sandbox
from schemas import Channel, Reason
from tests.integration import processes
from tests.integration.helpers import (
    RULES,
    notify,
    publish,
    publish_events,
    rows,
    shipment,
    wait_for_rows,
)

pytestmark = pytest.mark.integration

FCM_BAD_TOKEN = "The registration token is not a valid FCM registration token"


def on_db(database_url: str, call: Callable[[asyncpg.Connection], Any]) -> Any:
    async def run() -> Any:
        conn = await asyncpg.connect(database_url)
        try:
            return await call(conn)
        finally:
            await conn.close()

    return asyncio.run(run())


def suppress(database_url: str, channel: Channel, recipient: str) -> None:
    on_db(
        database_url,
        lambda conn: suppressions.suppress(conn, channel, recipient, Reason.MANUAL, "test"),
    )


def suppression(database_url: str, channel: Channel, recipient: str) -> Any:
    return on_db(database_url, lambda conn: suppressions.get(conn, channel, recipient))


def by_recipient(database_url: str, event_id: str) -> dict[str, dict[str, Any]]:
    return {r["recipient"]: r for r in rows(database_url, "event_id = $1", event_id)}


def requests_to(sandbox: Sandbox, recipient: str) -> int:
    return sum(1 for r in sandbox.requests() if r.recipient == recipient)


def test_a_suppressed_recipient_gets_skipped_and_no_provider_request(
    running: dict[str, str],
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    data = shipment(9101, tokens=2)
    phone, (dead, live) = data["customer"]["phone"], data["customer"]["push_tokens"]
    suppress(database_url, Channel.SMS, phone)
    suppress(database_url, Channel.PUSH, dead)
    event = f"sup-{running['NOTIFY_STREAM']}"
    publish(redis_client, running["NOTIFY_STREAM"], event, "shipment.delayed", data)
    wait_for_rows(database_url, event, 3)
    found = by_recipient(database_url, event)
    for skipped in (phone, dead):
        assert (found[skipped]["status"], found[skipped]["error_code"]) == ("skipped", "suppressed")
        assert found[skipped]["attempts"] == 0
    assert found[live]["status"] == "sent"
    assert [m.to for m in sandbox.messages()] == [live]
    assert requests_to(sandbox, phone) == requests_to(sandbox, dead) == 0


def test_a_suppression_between_routing_and_sending_is_honoured(
    pipeline_env: dict[str, str],
    rules_file: Callable[[str], Path],
    procs: processes.Start,
    tmp_path: Path,
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    rules_file(RULES)
    consumer = procs(processes.consumer(pipeline_env, tmp_path))
    consumer.wait_for_log("consumer started")
    stream = pipeline_env["NOTIFY_STREAM"]
    blocked, other = shipment(9102, tokens=0), shipment(9103, tokens=0)
    phone = blocked["customer"]["phone"]
    # Routed, stored pending, its task waiting in the broker: no worker runs yet.
    publish_events(redis_client, stream, f"between-{stream}", [blocked, other])
    wait_for_rows(database_url, f"between-{stream}-%", 2, {"pending"})
    suppress(database_url, Channel.SMS, phone)
    worker = procs(processes.worker(pipeline_env, tmp_path, concurrency=2))
    worker.wait_for_log("ready")
    sandbox.wait_for(1, timeout=30)
    wait_for_rows(database_url, f"between-{stream}-0", 1)
    [row] = rows(database_url, "event_id = $1", f"between-{stream}-0")
    assert (row["status"], row["error_code"], row["attempts"]) == ("skipped", "suppressed", 0)
    assert [m.to for m in sandbox.messages("sms")] == [other["customer"]["phone"]]
    assert requests_to(sandbox, phone) == 0
    assert "skipped: recipient suppressed" in worker.log()
    assert phone not in worker.log()  # masked


def test_a_reminder_that_falls_due_for_a_suppressed_number_is_skipped(
    start_pipeline: processes.StartPipeline,
    procs: processes.Start,
    tmp_path: Path,
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    rules = """
rules:
  - name: reminder
    on: shipment.delayed
    channel: sms
    to: "{{ data.customer.phone }}"
    body: "Reminder for {{ data.shipment_id }}"
    delay: 3s
"""
    env = start_pipeline(rules, NOTIFY_SCHEDULE_INTERVAL_SECONDS="0.3").env
    stream = env["NOTIFY_STREAM"]
    blocked, other = shipment(9104), shipment(9105)
    phone = blocked["customer"]["phone"]
    publish_events(redis_client, stream, f"due-{stream}", [blocked, other])
    wait_for_rows(database_url, f"due-{stream}-%", 2, {"scheduled"})
    suppress(database_url, Channel.SMS, phone)  # the customer texted STOP meanwhile
    beat = procs(processes.beat(env, tmp_path))
    beat.wait_for_log("beat: Starting")
    sandbox.wait_for(1, timeout=30)
    wait_for_rows(database_url, f"due-{stream}-0", 1)
    [row] = rows(database_url, "event_id = $1", f"due-{stream}-0")
    assert (row["status"], row["error_code"]) == ("skipped", "suppressed")
    assert [m.to for m in sandbox.messages("sms")] == [other["customer"]["phone"]]
    assert requests_to(sandbox, phone) == 0


def test_21610_suppresses_the_number_and_its_next_sms_is_skipped(
    running: dict[str, str],
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    data = shipment(9106, tokens=0)
    phone = data["customer"]["phone"]
    sandbox.fail_recipient(phone, {"code": 21610})
    stream = running["NOTIFY_STREAM"]
    publish(redis_client, stream, f"stop-{stream}-1", "shipment.delayed", data)
    wait_for_rows(database_url, f"stop-{stream}-1", 1)
    [first] = rows(database_url, "event_id = $1", f"stop-{stream}-1")
    assert (first["status"], first["error_code"]) == ("failed", "21610")
    found = suppression(database_url, Channel.SMS, phone)
    assert found is not None
    assert (found.reason, found.source) == (Reason.TWILIO_21610, f"notification:{first['id']}")
    publish(redis_client, stream, f"stop-{stream}-2", "shipment.delayed", data)
    wait_for_rows(database_url, f"stop-{stream}-2", 1)
    [second] = rows(database_url, "event_id = $1", f"stop-{stream}-2")
    assert (second["status"], second["error_code"]) == ("skipped", "suppressed")
    assert requests_to(sandbox, phone) == 1  # the refused send, and no more


def test_dead_push_tokens_are_suppressed_and_our_own_auth_errors_are_not(
    running: dict[str, str],
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    data = shipment(9107, delay=10, tokens=4)  # a 10-minute delay: push only, no SMS
    gone, foreign, malformed, ours = data["customer"]["push_tokens"]
    sandbox.fail_recipient(gone, {"error_code": "UNREGISTERED"})
    sandbox.fail_recipient(foreign, {"error_code": "SENDER_ID_MISMATCH"})
    sandbox.fail_recipient(malformed, {"error_code": "INVALID_ARGUMENT", "message": FCM_BAD_TOKEN})
    sandbox.fail_recipient(ours, {"error_code": "THIRD_PARTY_AUTH_ERROR"})
    stream = running["NOTIFY_STREAM"]
    publish(redis_client, stream, f"tok-{stream}-1", "shipment.delayed", data)
    wait_for_rows(database_url, f"tok-{stream}-1", 4)
    first = by_recipient(database_url, f"tok-{stream}-1")
    assert {t: r["status"] for t, r in first.items()} == dict.fromkeys(first, "failed")
    reasons = {
        t: getattr(suppression(database_url, Channel.PUSH, t), "reason", None)
        for t in (gone, foreign, malformed, ours)
    }
    assert reasons == {
        gone: Reason.UNREGISTERED, foreign: Reason.INVALID_TOKEN,
        malformed: Reason.INVALID_TOKEN, ours: None,
    }  # fmt: skip
    publish(redis_client, stream, f"tok-{stream}-2", "shipment.delayed", data)
    wait_for_rows(database_url, f"tok-{stream}-2", 4)
    second = by_recipient(database_url, f"tok-{stream}-2")
    assert {t: (r["status"], r["error_code"]) for t, r in second.items()} == {
        gone: ("skipped", "suppressed"), foreign: ("skipped", "suppressed"),
        malformed: ("skipped", "suppressed"), ours: ("failed", "THIRD_PARTY_AUTH_ERROR"),
    }  # fmt: skip
    assert [requests_to(sandbox, t) for t in (gone, foreign, malformed)] == [1, 1, 1]


def suppressions_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return notify(env, "suppressions", *args, check=True)


def test_the_cli_round_trip(pipeline_env: dict[str, str], database_url: str) -> None:
    phone, token = "+14155559108", "tok-9108-0"
    added = suppressions_cli(pipeline_env, "add", "sms", phone)
    assert "suppressed sms +1415*****08 (manual)" in added.stdout
    suppressions_cli(pipeline_env, "add", "push", token, "--reason", "unregistered")
    listed = json.loads(suppressions_cli(pipeline_env, "list", "--json").stdout)
    ours = {(s["channel"], s["recipient"]): s for s in listed}
    source = f"cli:{getpass.getuser()}"
    assert {k: (s["reason"], s["source"]) for k, s in ours.items()} == {
        ("sms", phone): ("manual", source), ("push", token): ("unregistered", source),
    }  # fmt: skip
    assert set(ours[("sms", phone)]) == {
        "channel", "recipient", "reason", "source", "created_at", "flag",
    }  # fmt: skip
    only_push = json.loads(
        suppressions_cli(pipeline_env, "list", "--channel", "push", "--json").stdout
    )
    assert {s["channel"] for s in only_push} == {"push"}
    table = suppressions_cli(pipeline_env, "list").stdout
    assert "+1415*****08" in table and phone not in table  # the table masks recipients
    removed = suppressions_cli(pipeline_env, "remove", "sms", phone)
    assert "lifted" in removed.stdout
    assert "was not suppressed" in suppressions_cli(pipeline_env, "remove", "sms", phone).stdout
    listed = json.loads(suppressions_cli(pipeline_env, "list", "--json").stdout)
    assert [s["recipient"] for s in listed] == [token]

    async def events(conn: asyncpg.Connection) -> list[tuple[str, str]]:
        found = await conn.fetch(
            "SELECT action, source FROM suppression_events WHERE recipient = $1 ORDER BY id",
            phone,
        )
        return [(r["action"], r["source"]) for r in found]

    assert on_db(database_url, events) == [("added", source), ("lifted", source)]


def test_the_cli_normalises_recipients_as_the_consumer_does(
    pipeline_env: dict[str, str], database_url: str
) -> None:
    """A number typed as people write it suppresses the E.164 number notifications go to,
    and is lifted in any other format; what names no recipient is refused (exit 2)."""
    env = {**pipeline_env, "NOTIFY_DEFAULT_REGION": "US"}
    added = suppressions_cli(env, "add", "sms", " (415) 555-0124 ")
    assert "suppressed sms +1415*****24 (manual)" in added.stdout
    assert suppression(database_url, Channel.SMS, "+14155550124") is not None
    assert suppression(database_url, Channel.SMS, "(415) 555-0124") is None
    assert "already suppressed" in suppressions_cli(env, "add", "sms", "+1 415-555-0124").stdout
    uk = suppressions_cli({**env, "NOTIFY_DEFAULT_REGION": "GB"}, "add", "sms", "07400 123456")
    assert "suppressed sms +4474******56" in uk.stdout
    removed = suppressions_cli(env, "remove", "sms", "415.555.0124")
    assert "lifted the suppression of sms +1415*****24" in removed.stdout
    assert suppression(database_url, Channel.SMS, "+14155550124") is None
    suppressions_cli(env, "remove", "sms", "+447400123456")

    for args in (["add", "sms", ""], ["add", "sms", "   "], ["add", "sms", "not-a-number"],
                 ["add", "sms", "+1 555"], ["remove", "sms", "12"], ["add", "push", ""],
                 ["add", "push", "tok with spaces"]):  # fmt: skip
        refused = notify(env, "suppressions", *args)
        assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
        assert refused.stderr.startswith(f"notify suppressions {args[0]}: "), refused.stderr
        assert "Traceback" not in refused.stderr
    assert json.loads(suppressions_cli(env, "list", "--json").stdout) == []
