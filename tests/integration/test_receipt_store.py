"""Receipts and outcomes in real Postgres: every status-changing statement writes its outcome,
the sweeper applies early receipts too, and retention reaches what no row owns."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from notify.cancellations import Cancel
from notify.inbound_messages import InboundMessage, InboundStore
from notify.store import OutcomeStore
from rules.routing import idempotency_key
from schemas import AttemptOutcome, Channel, NewNotification, Receipt, Resolution, Status

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


SUBJECT = f"SHP-{uuid.uuid4().hex[:8]}"  # this module's own, so a cancel touches only its rows


def note(status: Status = Status.PENDING, **fields: object) -> NewNotification:
    event = f"rs-{uuid.uuid4()}"
    return NewNotification(
        idempotency_key=idempotency_key(event, "r", "+14155550100"),
        event_id=event, event_type="shipment.delayed", event_subject=SUBJECT, rule="r",
        channel=Channel.SMS, recipient="+14155550100", body="hello", status=status,
        **fields,  # type: ignore[arg-type]
    )  # fmt: skip


async def outcome_ids(store: OutcomeStore, nid: int) -> list[str]:
    records = await store.pool.fetch(
        "SELECT outcome_id FROM outcome_outbox WHERE outcome_id LIKE $1 ORDER BY id", f"{nid}-%"
    )
    return [r["outcome_id"] for r in records]


async def test_every_statement_that_changes_a_status_writes_its_outcome(
    store: OutcomeStore,
) -> None:
    now = datetime.now(UTC)
    failed = note(Status.FAILED, error_code="invalid_recipient")
    later = note(Status.SCHEDULED, send_at=now + timedelta(hours=1), cancel_on=["shipment.*"])
    stale = note(Status.SCHEDULED, send_at=now - timedelta(days=2))
    inserted = await store.insert([failed, later, stale])
    ids = {
        r["idempotency_key"]: r["id"]
        for r in await store.pool.fetch(
            "SELECT id, idempotency_key FROM notifications WHERE idempotency_key = ANY($1)",
            list(inserted.inserted_keys),
        )
    }
    assert await outcome_ids(store, ids[failed.idempotency_key]) == [
        f"{ids[failed.idempotency_key]}-failed"
    ]
    assert await outcome_ids(store, ids[later.idempotency_key]) == []  # scheduled: no outcome
    await store.cancel(
        [Cancel("evt-cancel", "shipment.delivered", SUBJECT, datetime.now(UTC))], keep_seconds=0
    )
    assert await outcome_ids(store, ids[later.idempotency_key]) == [
        f"{ids[later.idempotency_key]}-cancelled"
    ]
    await store.dispatch_due(now=now, stale_seconds=3600, limit=10_000)
    assert await outcome_ids(store, ids[stale.idempotency_key]) == [
        f"{ids[stale.idempotency_key]}-failed"
    ]
    # A statement added later (a suppression, a throttle) is covered without knowing of it.
    [skipped] = (await store.insert([note()])).to_publish
    await store.pool.execute(
        "UPDATE notifications SET status = 'skipped', error_code = 'suppressed' WHERE id = $1",
        skipped[0],
    )
    [entry] = await store.pool.fetch(
        "SELECT * FROM outcome_outbox WHERE outcome_id = $1", f"{skipped[0]}-skipped"
    )
    assert entry["type"] == "notification.skipped" and entry["subject"] == SUBJECT
    assert '"error_code" : "suppressed"' in entry["data"]


async def test_the_sweeper_applies_a_receipt_that_came_before_its_sid(
    store: OutcomeStore,
) -> None:
    [(nid, _)] = (await store.insert([note()])).to_publish
    [row] = await store.claim_many([nid])
    sid = "SM" + uuid.uuid4().hex
    early = Receipt(provider_message_id=sid, provider_status="failed", error_code="30008",
                    received_at=datetime.now(UTC))  # fmt: skip
    recorded = await store.receipts.record_callbacks([early])
    assert recorded.settled == [] and recorded.unmatched == [sid]
    resolution = Resolution(
        status=Status.SENT, outcome=AttemptOutcome.RECONCILED, provider_message_id=sid
    )
    assert await store.resolve_sending(row, resolution)
    status, code = await store.pool.fetchrow(
        "SELECT status, error_code FROM notifications WHERE id = $1", nid
    )
    assert (status, code) == ("failed", "30008")
    assert await outcome_ids(store, nid) == [f"{nid}-sent", f"{nid}-failed"]


async def test_retention_deletes_old_inbound_messages_and_receipts_no_row_claimed(
    store: OutcomeStore,
) -> None:
    sid = "SM" + uuid.uuid4().hex
    await store.receipts.record_callbacks(
        [Receipt(provider_message_id=sid, provider_status="delivered",
                 received_at=datetime.now(UTC))]
    )  # fmt: skip
    await InboundStore(store.pool).record(
        InboundMessage(message_sid=sid, from_number="+14155550100", to_number=None, body="hi",
                       account_sid=None, opt_out_type=None, params={})
    )  # fmt: skip
    assert await store.delete_heard_older_than(days=1, limit=1000) == 0  # too young
    await store.pool.execute(
        "UPDATE notification_receipts SET received_at = now() - interval '2 days'"
        " WHERE provider_message_id = $1",
        sid,
    )
    await store.pool.execute(
        "UPDATE inbound_messages SET received_at = now() - interval '2 days'"
        " WHERE message_sid = $1",
        sid,
    )
    assert await store.delete_heard_older_than(days=1, limit=1000) >= 2
    assert (
        await store.pool.fetchval(
            "SELECT count(*) FROM notification_receipts WHERE provider_message_id = $1", sid
        )
        == 0
    )
