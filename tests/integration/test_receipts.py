"""Receipts through the whole pipeline: a real consumer and Celery worker sending with the
twilio SDK (StatusCallback set), `notify webhooks` taking signed callbacks, beat looking up
receipts that never came, and the outcomes stream the consumer relays."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis

from notify.webhook_paths import STATUS_CALLBACK_PATH
from sandbox import Sandbox
from tests.integration import processes
from tests.integration.helpers import fetch, publish, rows, shipment
from tests.integration.twilio_callbacks import PUBLIC_URL, TwilioCallbacks, receipts

pytestmark = pytest.mark.integration

StartWebhooks = Callable[..., TwilioCallbacks]
SMS_ONLY = """
rules:
  - name: delay-sms
    on: shipment.delayed
    channel: sms
    to: "{{ data.customer.phone }}"
    body: "Shipment {{ data.shipment_id }} is {{ data.delay_minutes }} min late."
"""


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

    # The consumer relays each change as an entry named like an event (CONTRACT section 7).
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


class TwilioLookups(ThreadingHTTPServer):
    """Twilio's GET Messages/{sid}.json and nothing else: the answers a receipt lookup needs.

    (The project's emulator answers this route with the status at creation, `queued`, until
    its message lifecycle lands; these tests need `delivered`, error codes, 404 and 429.)
    """

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _LookupHandler)
        self.answers: dict[str, tuple[str, int | None]] = {}
        self.rate_limited = False
        self.asked: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _LookupHandler(BaseHTTPRequestHandler):
    server: TwilioLookups
    _ROUTE = re.compile(r"^/2010-04-01/Accounts/(AC\w+)/Messages/(\w+)\.json$")

    def do_GET(self) -> None:
        match = self._ROUTE.match(self.path)
        sid = match.group(2) if match else ""
        self.server.asked.append(sid)
        if self.server.rate_limited:
            body = {"code": 20429, "message": "Too Many Requests", "status": 429}
            return self._reply(429, body, {"Retry-After": "1"})
        if match is None or sid not in self.server.answers:
            return self._reply(404, {"code": 20404, "message": "not found", "status": 404})
        status, code = self.server.answers[sid]
        account = match.group(1)
        return self._reply(200, {"sid": sid, "account_sid": account, "status": status,
                                 "error_code": code, "error_message": None})  # fmt: skip

    def _reply(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def twilio_lookups() -> Iterator[TwilioLookups]:
    server = TwilioLookups()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def sent_long_ago(database_url: str, tag: str, count: int) -> list[dict[str, Any]]:
    """`sent` SMS whose receipt is long overdue (so they come before any other test's rows
    in this database, oldest first), nothing heard since."""
    return fetch(
        database_url,
        """INSERT INTO notifications (idempotency_key, event_id, event_type, rule, channel,
               recipient, body, status, provider_message_id, attempts, updated_at)
           SELECT 'lk-' || $1 || '-' || g, 'lk-' || $1 || '-' || g, 'shipment.delayed',
               'delay-sms', 'sms', '+14155550100', 'hi', 'sent', 'SM' || md5($1 || g), 1,
               now() - interval '30 days'
           FROM generate_series(1, $2) AS g RETURNING id, provider_message_id""",
        tag,
        count,
    )


def test_receipts_that_never_come_are_looked_up_and_lookups_stop_on_429(
    pipeline_env: dict[str, str],
    procs: processes.Start,
    tmp_path: Path,
    twilio_lookups: TwilioLookups,
    database_url: str,
) -> None:
    env = {
        **pipeline_env,
        "TWILIO_API_URL": twilio_lookups.url,
        "NOTIFY_RECEIPT_TIMEOUT_SECONDS": "1",
        "NOTIFY_RECEIPT_LOOKUPS_PER_RUN": "10",
    }
    tag = env["NOTIFY_STREAM"]
    made = sent_long_ago(database_url, tag, 4)
    sids = [r["provider_message_id"] for r in made]
    twilio_lookups.answers = {
        sids[0]: ("delivered", None),
        sids[1]: ("undelivered", 30003),
        sids[2]: ("failed", 30008),
        sids[3]: ("sent", None),  # Twilio has not heard from the carrier either
    }
    twilio_lookups.rate_limited = True
    worker = procs(processes.worker(env, tmp_path))
    worker.wait_for_log("ready")
    procs(processes.beat(env, tmp_path))
    processes.wait_until(lambda: len(twilio_lookups.asked) >= 3, message="three runs asked")
    # Each run stopped at its first 429 and left every row as it was.
    stopped = worker.log().count("receipt lookups stopped")
    assert 0 < len(twilio_lookups.asked) <= stopped + 1
    looked = fetch(
        database_url,
        "SELECT status, receipt_lookups FROM notifications WHERE event_id LIKE $1",
        f"lk-{tag}-%",
    )
    assert {(r["status"], r["receipt_lookups"]) for r in looked} == {("sent", 0)}

    twilio_lookups.rate_limited = False
    settled = "event_id LIKE $1 AND status <> 'sent'"
    processes.wait_until(
        lambda: len(rows(database_url, settled, f"lk-{tag}-%")) == 3, message="three settled"
    )
    final = {
        r["provider_message_id"]: r for r in rows(database_url, "event_id LIKE $1", f"lk-{tag}-%")
    }
    assert [(final[s]["status"], final[s]["error_code"]) for s in sids] == [
        ("delivered", None),
        ("undelivered", "30003"),
        ("failed", "30008"),
        ("sent", None),
    ]
    for sid in sids[:3]:
        [receipt] = receipts(database_url, sid)
        assert receipt["source"] == "lookup"  # the final status came from a lookup
    processes.wait_until(
        lambda: rows(database_url, "provider_message_id = $1", sids[3])[0]["receipt_lookups"] >= 1,
        message="the unsettled row counted a lookup",
    )
