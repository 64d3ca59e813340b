"""Receipts through the whole pipeline: a real consumer and Celery worker sending with the
twilio SDK (StatusCallback set), `notify webhooks` taking signed callbacks, beat looking up
receipts that never came, and the outcomes stream the consumer relays."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis

from notify.settings import Settings
from notify.webhook_paths import STATUS_CALLBACK_PATH
from sandbox import RequestRecord, Sandbox
from tasks.providers.twilio_sms import TwilioSms
from tests.integration import processes
from tests.integration.helpers import SMS_ONLY, fetch, publish, rows, shipment
from tests.integration.twilio_callbacks import PUBLIC_URL, TwilioCallbacks, receipts

pytestmark = pytest.mark.integration

StartWebhooks = Callable[..., TwilioCallbacks]


def outcomes(client: redis.Redis, stream: str) -> dict[str, dict[str, Any]]:
    """The outcomes stream by entry id (the last copy, if published more than once)."""
    found: dict[str, dict[str, Any]] = {}
    for _, raw in client.xrange(stream):  # type: ignore[union-attr]
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        fields["data"] = json.loads(fields["data"])
        found[fields["id"]] = fields
    return found


def test_receipts_settle_sent_sms_and_every_outcome_reaches_the_stream(
    start_pipeline: processes.StartPipeline,
    start_webhooks: StartWebhooks,
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    env = start_pipeline(SMS_ONLY, NOTIFY_PUBLIC_URL=PUBLIC_URL).env
    twilio = start_webhooks()
    stream = env["NOTIFY_STREAM"]
    prefix = f"rc-{stream}-"
    for n in range(3):
        publish(redis_client, stream, f"{prefix}{n}", "shipment.delayed", shipment(n), f"SHP-{n}")
    bad = {**shipment(9), "customer": {"name": "X", "phone": "not a number"}}
    publish(redis_client, stream, f"{prefix}bad", "shipment.delayed", bad, "SHP-bad")
    processes.wait_until(
        lambda: len(rows(database_url, "event_id LIKE $1 AND status = 'sent'", prefix + "%")) == 3,
        message="three SMS sent",
    )
    # The real SDK asked Twilio for status callbacks at the public URL.
    callback_urls = {m.payload.get("StatusCallback") for m in sandbox.messages("sms")}
    assert callback_urls == {PUBLIC_URL + STATUS_CALLBACK_PATH}

    sent = {r["event_id"]: r for r in rows(database_url, "event_id LIKE $1", prefix + "%")}
    paths = {"0": ("delivered", None), "1": ("undelivered", "30003"), "2": ("failed", "30008")}
    for n, (status, code) in paths.items():
        sid = sent[f"{prefix}{n}"]["provider_message_id"]
        assert twilio.status(sid, "sent").status_code == 200
        assert twilio.status(sid, status, code).status_code == 200
    final = {r["event_id"]: r for r in rows(database_url, "event_id LIKE $1", prefix + "%")}
    for n, (status, code) in paths.items():
        assert (final[f"{prefix}{n}"]["status"], final[f"{prefix}{n}"]["error_code"]) == (
            status,
            code,
        )
    assert final[f"{prefix}bad"]["status"] == "failed"

    # The consumer relays each change as an entry named like an event (interfaces section 7).
    expected = {f"{final[f'{prefix}{n}']['id']}-sent" for n in paths}
    expected |= {f"{final[f'{prefix}{n}']['id']}-{s}" for n, (s, _) in paths.items()}
    expected.add(f"{final[f'{prefix}bad']['id']}-failed")
    out = env["NOTIFY_OUTCOMES_STREAM"]
    processes.wait_until(
        lambda: expected <= set(outcomes(redis_client, out)), message="outcomes published"
    )
    published = outcomes(redis_client, out)
    undelivered = published[f"{final[f'{prefix}1']['id']}-undelivered"]
    assert undelivered["type"] == "notification.undelivered"
    assert undelivered["source"] == "notify" and undelivered["subject"] == "SHP-1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", undelivered["time"])
    assert undelivered["data"] == {
        "notification_id": final[f"{prefix}1"]["id"],
        "event_id": f"{prefix}1",
        "rule": "delay-sms",
        "channel": "sms",
        "recipient": "+14155550001",
        "status": "undelivered",
        "error_code": "30003",
        "provider_message_id": final[f"{prefix}1"]["provider_message_id"],
    }
    invalid = published[f"{final[f'{prefix}bad']['id']}-failed"]["data"]
    assert (invalid["error_code"], invalid["provider_message_id"]) == ("invalid_recipient", None)
    assert final[f"{prefix}0"]["event_time"] is not None  # the start of notify_delivery_seconds


def test_a_callback_that_beats_the_workers_commit_is_applied_when_the_sid_lands(
    start_pipeline: processes.StartPipeline,
    start_webhooks: StartWebhooks,
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    """Twilio has the message (and calls back) while the worker's commit is held up."""
    sandbox.set_latency(1000, "sms")  # time to hold the row before the worker records it
    env = start_pipeline(SMS_ONLY, NOTIFY_PUBLIC_URL=PUBLIC_URL).env
    twilio = start_webhooks()
    event_id = f"race-{env['NOTIFY_STREAM']}"
    publish(redis_client, env["NOTIFY_STREAM"], event_id, "shipment.delayed", shipment(7))
    processes.wait_until(
        lambda: [r["status"] for r in rows(database_url, "event_id = $1", event_id)] == ["sending"],
        message="the worker's provider call in flight",
    )
    [claimed] = rows(database_url, "event_id = $1", event_id)

    async def race() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            async with conn.transaction():  # the worker's UPDATE waits for this lock
                await conn.execute(
                    "SELECT 1 FROM notifications WHERE id = $1 FOR UPDATE", claimed["id"]
                )
                processes.wait_until(lambda: sandbox.messages("sms"), message="Twilio accepted")
                sid = sandbox.messages("sms")[0].id
                answers: list[int] = []
                sender = threading.Thread(
                    target=lambda: answers.append(twilio.status(sid, "delivered").status_code)
                )
                sender.start()
                stored = """SELECT notification_id FROM notification_receipts
                            WHERE provider_message_id = $1"""
                for _ in range(200):  # the callback is stored before the SID is
                    if await conn.fetch(stored, sid):
                        break
                    await asyncio.sleep(0.05)
                assert [r["notification_id"] for r in await conn.fetch(stored, sid)] == [None]
            await asyncio.to_thread(sender.join, 30)  # lock released: the worker commits
            assert answers == [200]
            return len(await conn.fetch(stored, sid))
        finally:
            await conn.close()

    assert asyncio.run(race()) == 1
    processes.wait_until(
        lambda: rows(database_url, "id = $1", claimed["id"])[0]["status"] == "delivered",
        message="the early receipt applied when the SID landed",
    )
    [settled] = rows(database_url, "id = $1", claimed["id"])
    assert [
        r["notification_id"] for r in receipts(database_url, settled["provider_message_id"])
    ] == [claimed["id"]]
    assert outcome_ids(redis_client, env, database_url, claimed["id"]) >= {
        f"{claimed['id']}-sent",
        f"{claimed['id']}-delivered",
    }


def outcome_ids(client: redis.Redis, env: dict[str, str], database_url: str, nid: int) -> set[str]:
    """Outcome ids for a row, wherever they are now (the relay may not have run yet)."""
    waiting = fetch(
        database_url, "SELECT outcome_id FROM outcome_outbox WHERE outcome_id LIKE $1", f"{nid}-%"
    )
    published = {
        k for k in outcomes(client, env["NOTIFY_OUTCOMES_STREAM"]) if k.startswith(f"{nid}-")
    }
    return {r["outcome_id"] for r in waiting} | published


# Each recipient's last word from the carrier at Twilio, and what its row must settle to.
LOOKUP_OUTCOMES: dict[str, tuple[str, str | None]] = {
    "+14155550161": ("delivered", None),
    "+14155550162": ("undelivered", "30003"),
    "+14155550163": ("failed", "30008"),
    "+14155550164": ("sent", None),  # the carrier never reports: Twilio still says `sent`
}


def created_at_twilio(sandbox: Sandbox, env: dict[str, str]) -> list[str]:
    """One SMS per LOOKUP_OUTCOMES recipient, created at the emulator by the worker's own
    provider (the twilio SDK; no NOTIFY_PUBLIC_URL, so no StatusCallback), each already at
    its status there. Their SIDs, in LOOKUP_OUTCOMES order."""
    sms = TwilioSms(Settings.from_env(env))
    sids = []
    for to, (status, code) in LOOKUP_OUTCOMES.items():
        if code is not None:
            sandbox.set_sms_outcome(to, status, int(code))
        # The delay is taken when a message is sent: this one's report is due after the test.
        sandbox.set_delivery_delay(3600 if status == "sent" else 0)
        sid = sms.send(to, "hi")
        assert sandbox.wait_for_status(sid, status).status == status
        sids.append(sid)
    sandbox.set_delivery_delay(0)
    return sids


def sent_long_ago(database_url: str, tag: str, sids: list[str]) -> list[dict[str, Any]]:
    """`sent` SMS rows for these SIDs (to LOOKUP_OUTCOMES' recipients) whose receipt is long
    overdue (so they come before any other test's rows in this database, oldest first),
    nothing heard since."""
    return fetch(
        database_url,
        """INSERT INTO notifications (idempotency_key, event_id, event_type, rule, channel,
               recipient, body, status, provider_message_id, attempts, updated_at)
           SELECT 'lk-' || $1 || '-' || n, 'lk-' || $1 || '-' || n, 'shipment.delayed',
               'delay-sms', 'sms', recipient, 'hi', 'sent', sid, 1, now() - interval '30 days'
           FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS m(sid, recipient, n)
           RETURNING id, provider_message_id""",
        tag,
        sids,
        list(LOOKUP_OUTCOMES),
    )


def lookups(sandbox: Sandbox) -> list[RequestRecord]:
    """Every GET the emulator had on Twilio's Messages resource."""
    return [r for r in sandbox.requests("sms") if r.method == "GET"]


def test_receipts_that_never_come_are_looked_up_and_lookups_stop_on_429(
    pipeline_env: dict[str, str],
    procs: processes.Start,
    tmp_path: Path,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    env = {
        **pipeline_env,
        "NOTIFY_RECEIPT_TIMEOUT_SECONDS": "1",
        "NOTIFY_RECEIPT_LOOKUPS_PER_RUN": "10",
    }
    env.pop("NOTIFY_PUBLIC_URL", None)  # no StatusCallback: no receipt ever comes
    tag = env["NOTIFY_STREAM"]
    sids = created_at_twilio(sandbox, env)
    sent_long_ago(database_url, tag, sids)
    sandbox.fail_sms_reads({"code": 20429, "retry_after": 1})  # Twilio rate-limits lookups
    worker = procs(processes.worker(env, tmp_path))
    worker.wait_for_log("ready")
    procs(processes.beat(env, tmp_path))
    processes.wait_until(lambda: len(lookups(sandbox)) >= 3, message="three runs asked")
    # Each run stopped at its first 429 and left every row as it was.
    stopped = worker.log().count("receipt lookups stopped")
    asked = lookups(sandbox)
    assert 0 < len(asked) <= stopped + 1
    assert {(r.status, r.error) for r in asked} == {(429, "20429")}
    assert {r.path.rsplit("/", 1)[-1].removesuffix(".json") for r in asked} <= set(sids)
    looked = fetch(
        database_url,
        "SELECT status, receipt_lookups FROM notifications WHERE event_id LIKE $1",
        f"lk-{tag}-%",
    )
    assert {(r["status"], r["receipt_lookups"]) for r in looked} == {("sent", 0)}

    sandbox.fail_sms_reads(None)
    settled = "event_id LIKE $1 AND status <> 'sent'"
    processes.wait_until(
        lambda: len(rows(database_url, settled, f"lk-{tag}-%")) == 3, message="three settled"
    )
    final = {
        r["provider_message_id"]: r for r in rows(database_url, "event_id LIKE $1", f"lk-{tag}-%")
    }
    assert [(final[s]["status"], final[s]["error_code"]) for s in sids] == list(
        LOOKUP_OUTCOMES.values()
    )
    for sid in sids[:3]:
        [receipt] = receipts(database_url, sid)
        assert receipt["source"] == "lookup"  # the final status came from a lookup
    processes.wait_until(
        lambda: rows(database_url, "provider_message_id = $1", sids[3])[0]["receipt_lookups"] >= 1,
        message="the unsettled row counted a lookup",
    )
    assert sandbox.webhooks() == []  # Twilio called nobody back: lookups did it all
