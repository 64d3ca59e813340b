"""Which provider holds a row, in Postgres: chosen at the first claim, kept, moved only by a
failover, recorded on each attempt and carried on the outcomes (migration 7)."""

from __future__ import annotations

import uuid

import pytest

from notify.outbox import entry
from notify.store import Finished, OutcomeStore
from schemas import AttemptOutcome, Provider, Status
from tests.integration.test_store import note

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def providers(store: OutcomeStore, nid: int) -> tuple[str | None, list[str | None]]:
    row = await store.pool.fetchval("SELECT provider FROM notifications WHERE id = $1", nid)
    attempts = await store.pool.fetch(
        "SELECT provider FROM notification_attempts WHERE notification_id = $1 ORDER BY attempt",
        nid,
    )
    return row, [a["provider"] for a in attempts]


async def test_the_first_claim_chooses_a_failover_moves_and_outcomes_carry_it(
    store: OutcomeStore,
) -> None:
    [(nid, _)] = (await store.insert([note(f"e-{uuid.uuid4()}")])).to_publish
    [first] = await store.claim_many([nid], ["twilio"])
    assert first.provider is Provider.TWILIO
    # Refused before acceptance: the row moves to Vonage and forgets nothing else.
    await store.finish_many(
        [Finished(nid, 1, Status.PENDING, AttemptOutcome.TRANSIENT_ERROR, move_to="vonage")]
    )
    # A later claim's pick does not override the provider the row holds.
    [second] = await store.claim_many([nid], ["twilio"])
    assert second.provider is Provider.VONAGE
    assert await providers(store, nid) == ("vonage", ["twilio", "vonage"])
    await store.finish_many(
        [Finished(nid, 2, Status.SENT, AttemptOutcome.SENT, provider_message_id=str(uuid.uuid4()))]
    )
    outbox = await store.pool.fetch(
        """SELECT outcome_id, type, subject, time, data, provider FROM outcome_outbox
           WHERE outcome_id = $1""",
        f"{nid}-sent",
    )
    [fields] = [entry(r) for r in outbox]
    assert fields["provider"] == "vonage" and fields["type"] == "notification.sent"


async def test_a_lost_answer_keeps_the_provider_and_a_move_clears_the_unsure_send(
    store: OutcomeStore,
) -> None:
    [(nid, _)] = (await store.insert([note(f"e-{uuid.uuid4()}")])).to_publish
    await store.claim_many([nid], ["twilio"])
    await store.finish_many(
        [Finished(nid, 1, Status.PENDING, AttemptOutcome.TRANSIENT_ERROR, unsure=True)]
    )
    [again] = await store.claim_many([nid], ["vonage"])
    assert again.provider is Provider.TWILIO and again.unsure_since is not None
    # The lookup found nothing at Twilio: the move forgets the send Twilio never had.
    await store.finish_many(
        [Finished(nid, 2, Status.PENDING, AttemptOutcome.NOT_RECEIVED, move_to="vonage")]
    )
    [moved] = await store.claim_many([nid], ["twilio"])
    assert moved.provider is Provider.VONAGE and moved.unsure_since is None
