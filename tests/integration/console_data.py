"""What the console tests look at: notifications routed and stored as production does (the
rules engine, the outcome store), then moved along as workers and webhooks record it."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import redis

from console import users
from consumer.decisions import DecisionLog, decide
from notify import suppressions
from notify.store import OutcomeStore
from rules.routing import route
from rules.ruleset import load_text
from schemas import Channel, Reason
from schemas.decoding import decode_entry

RULES = """
rules:
  - name: delay-sms
    on: shipment.delayed
    when: data.delay_minutes >= 30
    channel: sms
    to: "{{ data.customer.phone }}"
    body: "Hi {{ data.customer.name }}, shipment {{ data.shipment_id }} is late."
  - name: eta-reminder
    on: shipment.delayed
    channel: sms
    to: "{{ data.customer.phone }}"
    body: "Your shipment arrives in about 30 minutes."
    delay: 1d
    cancel_on: [shipment.delivered]
"""
PASSWORD = "correct horse battery"
XSS = "<script>alert(1)</script>"


@dataclass
class Seeded:
    tag: str
    number: str  # E.164
    national: str  # as a person types it
    quiet_number: str  # E.164, suppressed after replying STOP
    delivered_id: int
    skipped_id: int
    scheduled_id: int
    subject: str
    nothing_event: str  # matched a rule whose condition was false
    dlq_id: str


def write_users(path: Path) -> Path:
    for name, role in (("vera", "viewer"), ("sam", "support"), ("olga", "operator")):
        users.add(str(path), name, users.Role.parse(role), PASSWORD)
    return path


def _event(event_id: str, subject: str, phone: str, delay: int) -> dict[bytes, bytes]:
    data = {
        "shipment_id": subject,
        "delay_minutes": delay,
        "customer": {"name": "Ann", "phone": phone},
    }
    millis = int(datetime.now(UTC).timestamp() * 1000)
    return {
        b"id": event_id.encode(),
        b"type": b"shipment.delayed",
        b"subject": subject.encode(),
        b"data": json.dumps(data).encode(),
        b"time": datetime.now(UTC).isoformat().encode(),
        b"_entry": str(millis).encode(),
    }


async def _route_and_store(
    store: OutcomeStore, log: DecisionLog, fields: dict[bytes, bytes]
) -> None:
    rules = load_text(RULES)
    entry = fields.pop(b"_entry").decode()
    event = decode_entry(f"{entry}-0", fields, 65536)
    routed = route(event, rules, now=datetime.now(UTC))
    await store.insert(routed.notifications)
    record = decide(event, rules.matching(event.type), routed.notifications, rules.version)
    if record is not None:
        log.add([record])


async def _seed(url: str, tag: str, numbers: tuple[str, str]) -> tuple[int, int, int]:
    number, quiet = numbers
    store = await OutcomeStore.connect(url)
    log = DecisionLog(store.pool)
    try:
        await suppressions.suppress(store.pool, Channel.SMS, quiet, Reason.OPT_OUT, f"SM{tag}in")
        for event_id, phone, delay in (
            (f"evt-{tag}-1", number, 45),
            (f"evt-{tag}-2", quiet, 45),
            (f"evt-{tag}-3", number, 5),
        ):
            await _route_and_store(store, log, _event(event_id, f"SHP-{tag}", phone, delay))
        await log.flush()
        pool = store.pool
        ids = {
            (r["event_id"], r["rule"]): r["id"]
            for r in await pool.fetch(
                "SELECT id, event_id, rule FROM notifications WHERE event_subject = $1",
                f"SHP-{tag}",
            )
        }
        delivered = ids[f"evt-{tag}-1", "delay-sms"]
        sid = f"SM{tag}0001"
        await pool.execute(
            """INSERT INTO notification_attempts (notification_id, attempt, finished_at,
                   outcome, provider_message_id) VALUES ($1, 1, now(), 'sent', $2)""",
            delivered,
            sid,
        )
        for status in ("sent", "delivered"):
            await pool.execute(
                """INSERT INTO notification_receipts (notification_id, provider_message_id,
                       provider_status, source) VALUES ($1, $2, $3, 'callback')""",
                delivered,
                sid,
                status,
            )
        await pool.execute(
            """UPDATE notifications SET status = 'delivered', attempts = 1,
                   provider_message_id = $2, updated_at = now() WHERE id = $1""",
            delivered,
            sid,
        )
        for n, body in enumerate(("STOP", XSS)):
            await pool.execute(
                """INSERT INTO inbound_messages (message_sid, from_number, body, params)
                   VALUES ($1, $2, $3, '{}')""",
                f"SM{tag}in{n}",
                quiet,
                body,
            )
        return delivered, ids[f"evt-{tag}-2", "delay-sms"], ids[f"evt-{tag}-1", "eta-reminder"]
    finally:
        await store.close()


def seed(database_url: str, client: redis.Redis, dlq: str) -> Seeded:
    tag = uuid.uuid4().hex[:8]
    n = int(tag[:4], 16) % 9000
    number, quiet = f"+1415555{n:04d}", f"+1415556{n:04d}"
    delivered, skipped, scheduled = asyncio.run(_seed(database_url, tag, (number, quiet)))
    fields = {
        "id": f"evt-{tag}-bad",
        "type": "shipment.delayed",
        "data": XSS,
        "_dlq_reason": "invalid_data",
        "_dlq_detail": f"data is not JSON: {XSS}",
        "_dlq_entry_id": "1-0",
        "_dlq_deliveries": "1",
    }
    dlq_id = client.xadd(dlq, fields).decode()  # type: ignore[arg-type,union-attr]
    national = f"(415) 555-{n:04d}"
    return Seeded(
        tag,
        number,
        national,
        quiet,
        delivered,
        skipped,
        scheduled,
        f"SHP-{tag}",
        f"evt-{tag}-3",
        dlq_id,
    )


def replied_stop(database_url: str, data: Seeded) -> None:
    """The quiet number's opt-out, again: the suite's autouse fixture forgets every
    suppression after each test (tests/integration/conftest.py)."""

    async def add() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            source = f"SM{data.tag}in0"
            await suppressions.suppress(
                conn, Channel.SMS, data.quiet_number, Reason.OPT_OUT, source
            )
        finally:
            await conn.close()

    asyncio.run(add())


def audit_rows(database_url: str, user: str) -> list[dict[str, object]]:
    async def fetch() -> list[dict[str, object]]:
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(
                'SELECT * FROM console_audit WHERE "user" = $1 ORDER BY id', user
            )
            return [dict(r) for r in rows]
        finally:
            await conn.close()

    return asyncio.run(fetch())
