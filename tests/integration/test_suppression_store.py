"""Suppressions against real Postgres: changes and their history, inbound SMS, and the check
in every statement that moves a notification towards a provider."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from notify import suppressions
from notify.inbound import handle_inbound
from notify.store import Finished, OutcomeStore
from notify.suppressions import NewSuppression
from rules.routing import idempotency_key
from schemas import (
    NOT_E164,
    AttemptOutcome,
    Channel,
    InboundSms,
    Keyword,
    NewNotification,
    Reason,
    Status,
    ThrottleKey,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def number() -> str:
    """A fresh recipient. (Suppressions are removed after each test by the conftest: the
    session's database is shared.)"""
    return f"+1415{random.randint(2_000_000, 9_999_999)}"


def note(recipient: str, *, status: Status = Status.PENDING, **extra: object) -> NewNotification:
    event = f"e-{uuid.uuid4()}"
    return NewNotification(
        idempotency_key=idempotency_key(event, "r", recipient),
        event_id=event, event_type="shipment.delayed", event_subject=None, rule="r",
        channel=Channel.SMS, recipient=recipient, body="hello", status=status,
        **extra,  # type: ignore[arg-type]
    )  # fmt: skip


async def row(store: OutcomeStore, nid: int) -> dict[str, object]:
    record = await store.pool.fetchrow("SELECT * FROM notifications WHERE id = $1", nid)
    assert record is not None
    return dict(record)


async def history(store: OutcomeStore, recipient: str) -> list[tuple[str, str, str]]:
    records = await store.pool.fetch(
        "SELECT action, reason, source FROM suppression_events WHERE recipient = $1 ORDER BY id",
        recipient,
    )
    return [(r["action"], r["reason"], r["source"]) for r in records]


async def test_a_change_happens_once_and_is_recorded_with_its_source(store: OutcomeStore) -> None:
    n = number()
    assert await store.suppress(Channel.SMS, n, Reason.OPT_OUT, "inbound:SM1") is True
    assert await store.suppress(Channel.SMS, n, Reason.MANUAL, "cli:ann") is False
    [found] = [s for s in await store.suppressions(Channel.SMS) if s.recipient == n]
    assert (found.reason, found.source, found.flag) == (Reason.OPT_OUT, "inbound:SM1", None)
    assert n not in {s.recipient for s in await store.suppressions(Channel.PUSH)}
    assert await store.unsuppress(Channel.SMS, n, "cli:bob") is True
    assert await store.unsuppress(Channel.SMS, n, "cli:bob") is False
    assert await suppressions.get(store.pool, Channel.SMS, n) is None
    # The first reason stays until lifted; the second `add` changed nothing, so left no trace.
    assert await history(store, n) == [
        ("added", "opt_out", "inbound:SM1"), ("lifted", "opt_out", "cli:bob"),
    ]  # fmt: skip


async def test_one_recipient_per_channel(store: OutcomeStore) -> None:
    n = number()
    assert await store.suppress(Channel.SMS, n, Reason.MANUAL, "cli:ann")
    assert await store.suppress(Channel.PUSH, n, Reason.MANUAL, "cli:ann")
    assert {s.channel for s in await store.suppressions() if s.recipient == n} == set(Channel)
    await store.unsuppress(Channel.PUSH, n, "cli:ann")


async def test_inbound_stop_and_start_with_and_without_opt_out_type(store: OutcomeStore) -> None:
    n = number()

    async def inbound(body: str, opt_out_type: str | None = None) -> tuple[Keyword, bool]:
        sid = f"SM{uuid.uuid4().hex}"
        message = InboundSms(message_sid=sid, from_=n, to="+15005550006", body=body,
                             opt_out_type=opt_out_type)  # fmt: skip
        async with store.pool.acquire() as conn:
            result = await handle_inbound(conn, message)
        return result.keyword, result.changed

    assert await inbound("please stop at the back door") == (Keyword.NONE, False)
    assert await suppressions.get(store.pool, Channel.SMS, n) is None
    assert await inbound(" Stop ") == (Keyword.STOP, True)
    assert await inbound("STOPALL") == (Keyword.STOP, False)  # already suppressed
    assert await inbound("HELP") == (Keyword.HELP, False)
    assert await suppressions.get(store.pool, Channel.SMS, n) is not None  # HELP changed nothing
    assert await inbound("yes") == (Keyword.START, True)
    assert await inbound("Arrêt", "STOP") == (Keyword.STOP, True)  # Advanced Opt-Out's word
    assert await inbound("whatever", "START") == (Keyword.START, True)
    actions = [(a, s.startswith("inbound:SM")) for a, _, s in await history(store, n)]
    assert actions == [("added", True), ("lifted", True), ("added", True), ("lifted", True)]


async def test_inbound_inside_the_callers_transaction_rolls_back_with_it(
    store: OutcomeStore,
) -> None:
    n = number()
    message = InboundSms(message_sid="SMrolled", from_=n, body="STOP")
    async with store.pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        assert (await handle_inbound(conn, message)).changed
        await tx.rollback()
    assert await suppressions.get(store.pool, Channel.SMS, n) is None
    assert await history(store, n) == []


async def test_a_number_that_is_not_e164_is_stored_as_given_and_flagged(
    store: OutcomeStore,
) -> None:
    odd = f"415{random.randint(1_000_000, 9_999_999)}"
    result = await handle_inbound(store.pool, InboundSms(message_sid="SModd", from_=odd,
                                                         body="stop"))  # fmt: skip
    assert (result.changed, result.flag) == (True, NOT_E164)
    found = await suppressions.get(store.pool, Channel.SMS, odd)
    assert found is not None and (found.recipient, found.flag) == (odd, NOT_E164)


async def test_an_inbound_message_without_a_sender_changes_nothing(store: OutcomeStore) -> None:
    result = await handle_inbound(store.pool, InboundSms(message_sid="SMnone", from_=" ",
                                                         body="STOP"))  # fmt: skip
    assert (result.keyword, result.changed) == (Keyword.STOP, False)
    assert (
        await store.pool.fetchval(
            "SELECT count(*) FROM suppression_events WHERE source = 'inbound:SMnone'"
        )
        == 0
    )


async def test_the_consumers_insert_skips_a_suppressed_recipient(store: OutcomeStore) -> None:
    blocked, fine = number(), number()
    await store.suppress(Channel.SMS, blocked, Reason.OPT_OUT, "inbound:SM2")
    later = datetime.now(UTC) + timedelta(hours=1)
    rows = [
        note(blocked),
        note(blocked, status=Status.SCHEDULED, send_at=later),
        note(blocked, status=Status.FAILED, error_code="template_error"),  # stays failed
        note(fine),
    ]
    inserted = await store.insert(rows)
    assert len(inserted.to_publish) == 1
    assert inserted.skipped == {rows[0].idempotency_key: "suppressed",
                                rows[1].idempotency_key: "suppressed"}  # fmt: skip
    stored = await store.pool.fetch(
        "SELECT idempotency_key, status, error_code, error_message FROM notifications "
        "WHERE idempotency_key = ANY($1)",
        [r.idempotency_key for r in rows],
    )
    by_key = {r["idempotency_key"]: r for r in stored}
    assert [(by_key[r.idempotency_key]["status"], by_key[r.idempotency_key]["error_code"])
            for r in rows] == [
        ("skipped", "suppressed"), ("skipped", "suppressed"), ("failed", "template_error"),
        ("pending", None),
    ]  # fmt: skip
    assert by_key[rows[0].idempotency_key]["error_message"] == "recipient suppressed: opt_out"


async def test_a_throttled_row_keeps_its_reason(store: OutcomeStore) -> None:
    n = number()
    await store.suppress(Channel.SMS, n, Reason.MANUAL, "cli:ann")
    key = f"SHP-{uuid.uuid4().hex[:8]}"
    throttle = ThrottleKey(key=key, limit=1, window_seconds=60)
    rows = [note(n, throttle=throttle), note(n, throttle=throttle)]
    inserted = await store.insert(rows)
    assert inserted.skipped == {rows[0].idempotency_key: "suppressed",
                                rows[1].idempotency_key: "throttled"}  # fmt: skip


async def test_a_suppression_between_routing_and_the_claim_is_honoured(store: OutcomeStore) -> None:
    blocked, fine = number(), number()
    inserted = await store.insert([note(blocked), note(fine)])
    ids = [nid for nid, _ in inserted.to_publish]
    await store.suppress(Channel.SMS, blocked, Reason.TWILIO_21610, "notification:1")
    claimed = await store.claim_many(ids)
    assert sorted((r.recipient == blocked, r.status, r.attempts) for r in claimed) == [
        (False, Status.SENDING, 1), (True, Status.SKIPPED, 0),
    ]  # fmt: skip
    skipped = next(r for r in claimed if r.recipient == blocked)
    assert skipped.error_code == "suppressed"
    assert (
        await store.pool.fetchval(
            "SELECT count(*) FROM notification_attempts WHERE notification_id = $1", skipped.id
        )
        == 0
    )  # no provider call, so no attempt
    assert await store.claim(skipped.id) is None  # skipped is final


async def test_a_single_claim_returns_the_row_skipped(store: OutcomeStore) -> None:
    n = number()
    [(nid, _)] = (await store.insert([note(n)])).to_publish
    await store.suppress(Channel.SMS, n, Reason.MANUAL, "cli:ann")
    claimed = await store.claim(nid)
    assert claimed is not None and (claimed.status, claimed.error_code) == ("skipped", "suppressed")


async def test_a_reminder_that_falls_due_for_a_suppressed_number_is_skipped(
    store: OutcomeStore,
) -> None:
    blocked, fine = number(), number()
    due = datetime.now(UTC) + timedelta(days=400)  # far ahead: no other test's rows are as late
    rows = [note(n, status=Status.SCHEDULED, send_at=due) for n in (blocked, fine)]
    await store.insert(rows)
    await store.suppress(Channel.SMS, blocked, Reason.OPT_OUT, "inbound:SM3")
    # Overdue past the staleness limit too: a suppressed reminder is skipped, not expired.
    moved = await store.dispatch_due(now=due + timedelta(hours=2), stale_seconds=3600, limit=1000)
    ours = {r.idempotency_key for r in rows}
    stored = await store.pool.fetch(
        "SELECT id, recipient, status, error_code FROM notifications WHERE idempotency_key = "
        "ANY($1)",
        list(ours),
    )
    by_recipient = {r["recipient"]: r for r in stored}
    assert (by_recipient[blocked]["status"], by_recipient[blocked]["error_code"]) == (
        "skipped", "suppressed",
    )  # fmt: skip
    assert by_recipient[fine]["status"] == "failed"  # expired
    mine = {r["id"] for r in stored}
    assert {(nid, status) for nid, _, status in moved if nid in mine} == {
        (by_recipient[blocked]["id"], Status.SKIPPED), (by_recipient[fine]["id"], Status.FAILED),
    }  # fmt: skip


async def test_a_failed_attempt_and_the_suppression_it_calls_for_commit_together(
    store: OutcomeStore,
) -> None:
    n = number()
    [(nid, _)] = (await store.insert([note(n)])).to_publish
    [claimed] = await store.claim_many([nid])
    wanted = NewSuppression(Channel.SMS, n, Reason.TWILIO_21610, f"notification:{nid}")
    await store.finish_many([
        Finished(nid, claimed.attempts, Status.FAILED, AttemptOutcome.PERMANENT_ERROR,
                 error_code="21610", error_message="unsubscribed", suppress=wanted),
    ])  # fmt: skip
    stored = await row(store, nid)
    assert (stored["status"], stored["error_code"]) == ("failed", "21610")
    found = await suppressions.get(store.pool, Channel.SMS, n)
    assert found is not None and (found.reason, found.source) == ("21610", f"notification:{nid}")
    assert await history(store, n) == [("added", "21610", f"notification:{nid}")]


async def test_a_failed_suppression_rolls_back_the_attempt_record_with_it(
    store: OutcomeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = number()
    [(nid, _)] = (await store.insert([note(n)])).to_publish
    [claimed] = await store.claim_many([nid])

    async def broken(*_: object) -> None:
        raise ConnectionResetError("postgres went away mid-transaction")

    monkeypatch.setattr(suppressions, "_record_change", broken)
    wanted = NewSuppression(Channel.SMS, n, Reason.TWILIO_21610, f"notification:{nid}")
    with pytest.raises(ConnectionResetError):
        await store.finish_many([
            Finished(nid, claimed.attempts, Status.FAILED, AttemptOutcome.PERMANENT_ERROR,
                     error_code="21610", suppress=wanted),
        ])  # fmt: skip
    # Neither half stayed: the group commit's caller retries the whole record.
    assert (await row(store, nid))["status"] == "sending"
    assert await suppressions.get(store.pool, Channel.SMS, n) is None
