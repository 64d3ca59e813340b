"""`notify webhooks` as Twilio meets it: a real uvicorn process, real Postgres, requests
signed with the twilio SDK's RequestValidator and sent over HTTP.

No relay runs here, so each row's outcomes stay in `outcome_outbox`, where they are checked.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from notify.store import Finished, OutcomeStore
from notify.webhook_paths import INBOUND_PATH, STATUS_CALLBACK_PATH
from schemas import AttemptOutcome, Status
from tests.integration.helpers import fetch, notify, rows, value
from tests.integration.twilio_callbacks import (
    AUTH_TOKEN,
    TwilioCallbacks,
    new_sid,
    outbox,
    receipts,
)

pytestmark = pytest.mark.integration

StartWebhooks = Callable[..., TwilioCallbacks]


def sent_sms(database_url: str, count: int = 1) -> list[tuple[int, str]]:
    """`sent` SMS rows with their SIDs, as a worker leaves them (event 5 s ago)."""
    tag = uuid.uuid4().hex[:8]
    found = fetch(
        database_url,
        """INSERT INTO notifications (idempotency_key, event_id, event_type, rule, channel,
               recipient, body, status, provider_message_id, attempts, event_time)
           SELECT 'wh-' || $1 || '-' || g, 'wh-' || $1 || '-' || g, 'shipment.delayed',
               'delay-sms', 'sms', '+14155550100', 'hi', 'sent', 'SM' || md5($1 || g), 1,
               now() - interval '5 seconds'
           FROM generate_series(1, $2) AS g RETURNING id, provider_message_id""",
        tag,
        count,
    )
    return [(r["id"], r["provider_message_id"]) for r in found]


def row(database_url: str, notification_id: int) -> dict[str, Any]:
    return rows(database_url, "id = $1", notification_id)[0]


def test_each_receipt_path_settles_its_row(
    start_webhooks: StartWebhooks, database_url: str
) -> None:
    twilio = start_webhooks()
    (d, d_sid), (u, u_sid), (f, f_sid) = sent_sms(database_url, 3)
    assert twilio.status(d_sid, "delivered").status_code == 200
    assert twilio.status(u_sid, "undelivered", "30003").status_code == 200
    assert twilio.status(f_sid, "failed", "30008").status_code == 200

    assert (row(database_url, d)["status"], row(database_url, d)["error_code"]) == (
        "delivered",
        None,
    )
    assert (row(database_url, u)["status"], row(database_url, u)["error_code"]) == (
        "undelivered",
        "30003",
    )
    assert (row(database_url, f)["status"], row(database_url, f)["error_code"]) == (
        "failed",
        "30008",
    )
    paths = ((d, d_sid, "delivered"), (u, u_sid, "undelivered"), (f, f_sid, "failed"))
    for nid, sid, status in paths:
        [receipt] = receipts(database_url, sid)
        assert receipt["notification_id"] == nid and receipt["provider_status"] == status
        assert receipt["source"] == "callback" and receipt["idempotency_token"]
        assert outbox(database_url, nid) == [f"{nid}-sent", f"{nid}-{status}"]
    metrics = twilio.metrics()
    for status in ("delivered", "undelivered", "failed"):
        assert value(metrics, "notify_receipts_total", channel="sms", status=status) == 1
    assert value(metrics, "notify_delivery_seconds_count", channel="sms") == 1
    # The event was 5 s before the receipt: the histogram measures from the event's time.
    assert value(metrics, "notify_delivery_seconds_bucket", channel="sms", le="2.0") == 0
    assert value(metrics, "notify_delivery_seconds_bucket", channel="sms", le="10.0") == 1


def test_forged_signatures_get_403_and_change_nothing(
    start_webhooks: StartWebhooks, database_url: str
) -> None:
    twilio = start_webhooks()
    [(nid, sid)] = sent_sms(database_url)
    path = STATUS_CALLBACK_PATH
    good = {"MessageSid": sid, "MessageStatus": "delivered"}
    behind_the_proxy = TwilioCallbacks(twilio.base_url, public_url=twilio.base_url)
    forged = [
        ("missing_signature", twilio.post(path, good, signed=False)),
        ("missing_signature", twilio.post(path, good, signature="")),
        ("bad_signature", twilio.post(path, good, signature="bm90IGEgc2lnbmF0dXJl")),
        ("bad_signature", twilio.post(path, good, signature=twilio.sign(path, good, "other"))),
        # Signed over the address the process listens on, not the public URL Twilio calls.
        ("bad_signature", twilio.post(path, good, signature=behind_the_proxy.sign(path, good))),
        # Signed for one status, sent with another.
        (
            "bad_signature",
            twilio.post(
                path,
                {**good, "MessageStatus": "failed"},
                signature=twilio.sign(path, good),
            ),
        ),
        # A status callback's signature replayed on the inbound route.
        ("bad_signature", twilio.post(INBOUND_PATH, good, signature=twilio.sign(path, good))),
    ]
    assert [r.status_code for _, r in forged] == [403] * len(forged)
    assert row(database_url, nid)["status"] == "sent"
    assert receipts(database_url, sid) == []
    assert outbox(database_url, nid) == [f"{nid}-sent"]
    metrics = twilio.metrics()
    rejected = {
        (route, reason): value(metrics, "notify_webhook_rejected_total", route=route, reason=reason)
        for route in ("status", "inbound")
        for reason in ("missing_signature", "bad_signature")
    }
    assert rejected == {
        ("status", "missing_signature"): 2,
        ("status", "bad_signature"): 4,
        ("inbound", "missing_signature"): 0,
        ("inbound", "bad_signature"): 1,
    }
    assert twilio.process is not None
    log = twilio.process.log()
    assert "request rejected" in log and '"level": "warning"' in log
    assert AUTH_TOKEN not in log and twilio.sign(path, good) not in log
    # The genuine callback still works afterwards.
    assert twilio.status(sid, "delivered").status_code == 200
    assert row(database_url, nid)["status"] == "delivered"


def test_duplicates_and_reordering_are_harmless(
    start_webhooks: StartWebhooks, database_url: str
) -> None:
    twilio = start_webhooks()
    (a, a_sid), (b, b_sid), (c, c_sid) = sent_sms(database_url, 3)
    token = str(uuid.uuid4())
    # Delivered before sent, Twilio's retry of it (same idempotency token), then a late queued.
    order = (("delivered", token), ("sent", None), ("delivered", token), ("queued", None))
    for status, tok in order:
        assert twilio.status(a_sid, status, idempotency_token=tok).status_code == 200
    # A final status never moves back: failed stays failed whatever comes later.
    assert twilio.status(b_sid, "failed", "30008").status_code == 200
    assert twilio.status(b_sid, "delivered").status_code == 200
    assert twilio.status(b_sid, "undelivered", "30003").status_code == 200
    # Twenty copies of one callback at once, from twenty threads.
    answers: list[int] = []

    def send_copy() -> None:
        answers.append(twilio.status(c_sid, "undelivered", "30005").status_code)

    threads = [threading.Thread(target=send_copy) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [200] * 20

    assert row(database_url, a)["status"] == "delivered"
    assert (row(database_url, b)["status"], row(database_url, b)["error_code"]) == (
        "failed",
        "30008",
    )
    assert (row(database_url, c)["status"], row(database_url, c)["error_code"]) == (
        "undelivered",
        "30005",
    )
    # Every signed callback is a receipt, duplicates included; each outcome is written once.
    assert [r["provider_status"] for r in receipts(database_url, a_sid)] == [
        "delivered",
        "sent",
        "delivered",
        "queued",
    ]
    assert len(receipts(database_url, c_sid)) == 20
    assert outbox(database_url, a) == [f"{a}-sent", f"{a}-delivered"]
    assert outbox(database_url, b) == [f"{b}-sent", f"{b}-failed"]
    assert outbox(database_url, c) == [f"{c}-sent", f"{c}-undelivered"]


def test_a_callback_before_its_sid_is_recorded_is_applied_when_it_lands(
    start_webhooks: StartWebhooks, database_url: str
) -> None:
    """The worker's commit of the SID is still in flight when Twilio's callback comes."""
    twilio = start_webhooks()
    [(nid, _)] = sent_sms(database_url)
    unsent = "UPDATE notifications SET status = 'sending', provider_message_id = NULL WHERE id = $1"
    fetch(database_url, unsent, nid)
    sid = new_sid()
    assert twilio.status(sid, "sent").status_code == 200
    assert twilio.status(sid, "undelivered", "30006").status_code == 200
    assert row(database_url, nid)["status"] == "sending"
    assert [r["notification_id"] for r in receipts(database_url, sid)] == [None, None]
    assert value(twilio.metrics(), "notify_receipts_unmatched_total") == 2

    async def worker_commits() -> None:
        store = await OutcomeStore.connect(database_url)
        try:
            await store.finish_many([Finished(nid, 1, Status.SENT, AttemptOutcome.SENT, None, sid)])
        finally:
            await store.close()

    asyncio.run(worker_commits())
    settled = row(database_url, nid)
    assert (settled["status"], settled["error_code"]) == ("undelivered", "30006")
    assert [r["notification_id"] for r in receipts(database_url, sid)] == [nid, nid]
    assert outbox(database_url, nid)[-2:] == [f"{nid}-sent", f"{nid}-undelivered"]


def test_inbound_sms_is_recorded_once_and_answered_with_empty_twiml(
    start_webhooks: StartWebhooks, database_url: str
) -> None:
    twilio = start_webhooks()
    sid = new_sid()
    for _ in range(2):  # Twilio's retry of the same message
        answer = twilio.inbound(sid, "+14155550123", " Stop ", OptOutType="STOP")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/xml")
        assert answer.text == '<?xml version="1.0" encoding="UTF-8"?><Response/>'
    [stored] = fetch(database_url, "SELECT * FROM inbound_messages WHERE message_sid = $1", sid)
    assert (stored["from_number"], stored["body"], stored["opt_out_type"]) == (
        "+14155550123",
        " Stop ",
        "STOP",
    )
    assert '"Body": " Stop "' in stored["params"]
    assert value(twilio.metrics(), "notify_inbound_messages_total") == 1


def raw_http(port: int, request: bytes) -> bytes:
    """Bytes no HTTP client would send; returns the status line (or b'' if closed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
        conn.sendall(request)
        try:
            return conn.recv(200).split(b"\r\n", 1)[0]
        except (ConnectionResetError, TimeoutError):
            return b""


def test_garbage_never_gets_a_500_or_kills_the_server(
    start_webhooks: StartWebhooks, database_url: str
) -> None:
    twilio = start_webhooks()
    [(nid, sid)] = sent_sms(database_url)
    url = twilio.base_url + STATUS_CALLBACK_PATH
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    signed = {**form, "X-Twilio-Signature": twilio.sign(STATUS_CALLBACK_PATH, {})}
    post = twilio.session.post
    answers = {
        "json": post(url, json={"MessageSid": sid}).status_code,
        "no content type": post(url, data=b"MessageSid=x").status_code,
        "multipart": post(url, files={"MessageSid": ("a", b"x")}).status_code,
        "bad percent-encoding": post(url, data=b"MessageSid=%zz%&%%", headers=form).status_code,
        "percent-encoded non-UTF-8": post(url, data=b"MessageSid=%ff%fe", headers=form).status_code,
        "non-UTF-8 body": post(url, data=b"MessageSid=\xff\xfe\x00", headers=form).status_code,
        "NUL": post(url, data=b"MessageSid=SM%00", headers=form).status_code,
        "repeated field": post(url, data=b"a=1&a=2", headers=form).status_code,
        "thousands of fields": post(
            url, data=b"&".join(b"f%d=1" % i for i in range(5000)), headers=form
        ).status_code,
        "huge body": post(url, data=b"a=" + b"x" * 2_000_000, headers=form).status_code,
        "huge chunked body": post(
            url, data=iter([b"a=" + b"x" * 70_000] * 30), headers=form
        ).status_code,
        "signed but empty": post(url, data=b"", headers=signed).status_code,
        "GET": twilio.session.get(url).status_code,
        "unknown path": post(twilio.base_url + "/webhooks/twilio/nope", data=b"").status_code,
        "binary noise": post(url, data=bytes(range(256)) * 100, headers=form).status_code,
    }
    assert all(400 <= code < 500 for code in answers.values()), answers
    assert answers["huge body"] == answers["huge chunked body"] == 413
    assert answers["json"] == answers["no content type"] == 415
    assert answers["percent-encoded non-UTF-8"] == answers["NUL"] == 400
    assert twilio.process is not None
    port = int(twilio.base_url.rsplit(":", 1)[1])
    head = b"POST /webhooks/twilio/status HTTP/1.1\r\nHost: x\r\n"
    broken = {
        "not HTTP": b"NOT HTTP AT ALL\r\n\r\n",
        "bad Content-Length": head + b"Content-Length: abc\r\n\r\na=1",
        "body never comes": head + b"Content-Length: 5\r\n\r\n",
        "200 KB header": head + b"X: " + b"y" * 200_000 + b"\r\n\r\n",
        "TLS hello": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(100),
    }
    statuses = {name: raw_http(port, request) for name, request in broken.items()}
    assert statuses["200 KB header"] == b"HTTP/1.1 400 Bad Request", statuses
    assert not any(b" 500 " in line for line in statuses.values()), statuses
    # Still alive, still honest, and nothing changed.
    assert twilio.healthz() == 200
    assert row(database_url, nid)["status"] == "sent"
    assert receipts(database_url, sid) == []
    assert twilio.status(sid, "delivered").status_code == 200


def test_healthz_and_callbacks_answer_503_while_postgres_is_away(
    start_webhooks: StartWebhooks,
) -> None:
    healthy = start_webhooks()
    assert healthy.healthz() == 200
    away = start_webhooks("webhooks-no-db", DATABASE_URL="postgresql://127.0.0.1:1/nowhere")
    assert away.healthz() == 503
    assert away.status(new_sid(), "delivered").status_code == 503
    assert value(away.metrics(), "notify_webhook_unavailable_total", route="status") == 1


def test_sigterm_finishes_in_flight_requests_then_exits_0(
    start_webhooks: StartWebhooks, database_url: str
) -> None:
    twilio = start_webhooks()
    assert twilio.process is not None
    [(nid, sid)] = sent_sms(database_url)
    port = int(twilio.base_url.rsplit(":", 1)[1])

    async def scenario() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            # Hold the row, so the callback's UPDATE waits: a request in flight at SIGTERM.
            tx = conn.transaction()
            await tx.start()
            await conn.execute("SELECT 1 FROM notifications WHERE id = $1 FOR UPDATE", nid)
            answers: list[int] = []
            sender = threading.Thread(
                target=lambda: answers.append(twilio.status(sid, "delivered").status_code)
            )
            sender.start()
            waiting = """SELECT count(*) FROM pg_stat_activity
                         WHERE datname = current_database() AND wait_event_type = 'Lock'"""
            for _ in range(200):
                if await conn.fetchval(waiting):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the callback never reached Postgres")
            assert twilio.process is not None and twilio.process.proc is not None
            twilio.process.proc.send_signal(signal.SIGTERM)
            for _ in range(100):  # it stops accepting connections...
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                except OSError:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("still accepting connections after SIGTERM")
            assert twilio.process.proc.poll() is None  # ...but waits for the request
            await tx.rollback()
            await asyncio.to_thread(sender.join, 30)
            assert answers == [200]
        finally:
            await conn.close()

    asyncio.run(scenario())
    assert twilio.process.proc is not None
    assert twilio.process.proc.wait(30) == 0
    assert row(database_url, nid)["status"] == "delivered"
    assert [r["provider_status"] for r in receipts(database_url, sid)] == ["delivered"]


def test_refuses_to_start_without_what_signatures_need(pipeline_env: dict[str, str]) -> None:
    env = {**pipeline_env, "NOTIFY_PUBLIC_URL": "", "TWILIO_AUTH_TOKEN": ""}
    done = notify(env, "webhooks")
    assert done.returncode == 2
    assert "NOTIFY_PUBLIC_URL" in done.stderr and "TWILIO_AUTH_TOKEN" in done.stderr
