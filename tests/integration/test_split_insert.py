"""A batch inserted over two connections ends as the same rows as one insert of it.

Generated batches repeat idempotency keys, share throttle groups, and carry rows already
stored (a redelivered event). Each way runs on its own copy of the batch (keys and throttle
keys prefixed apart), and every stored row, throttle decision, published row and count must
match.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer import batches
from notify.inserts import Inserted
from notify.store import OutcomeStore
from schemas import Channel, NewNotification, Status, ThrottleKey
from tests.profiles import examples

pytestmark = [pytest.mark.integration]

RULES = ["a", "b"]
RECIPIENTS = ["+14155550100", "+14155550101", "+14155550102"]


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "event": draw(st.sampled_from(["e1", "e2", "e3"])),
        "rule": draw(st.sampled_from(RULES)),
        "recipient": draw(st.sampled_from(RECIPIENTS)),
        "status": draw(st.sampled_from([Status.PENDING, Status.PENDING, Status.SCHEDULED])),
        "throttle": draw(st.none() | st.sampled_from(["s1", "s2"])),
        "limit": draw(st.integers(1, 3)),
    }


def key(spec: dict[str, Any]) -> str:
    """What routing's key is a hash of: the event, the rule and the recipient."""
    return f"{spec['event']}|{spec['rule']}|{spec['recipient']}"


def build(prefix: str, spec: dict[str, Any]) -> NewNotification:
    throttle = spec["throttle"]
    return NewNotification(
        idempotency_key=prefix + key(spec),
        event_id=prefix + spec["event"],
        event_type="shipment.delayed",
        event_subject="SHP-1",
        rule=spec["rule"],
        channel=Channel.SMS,
        recipient=spec["recipient"],
        body="hi",
        status=spec["status"],
        throttle=None
        if throttle is None
        else ThrottleKey(key=prefix + throttle, limit=spec["limit"], window_seconds=600.0),
    )


async def outcome(
    store: OutcomeStore, prefix: str, inserted: Inserted
) -> tuple[dict[str, Any], list[str], set[str], int, dict[str, str]]:
    records = await store.pool.fetch(
        "SELECT id, idempotency_key, rule, recipient, status, error_code, error_message "
        "FROM notifications WHERE idempotency_key LIKE $1 || '%'",
        prefix,
    )
    by_id = {r["id"]: r["idempotency_key"].removeprefix(prefix) for r in records}
    rows = {
        r["idempotency_key"].removeprefix(prefix): (
            r["rule"], r["recipient"], r["status"], r["error_code"],
            (r["error_message"] or "").replace(prefix, ""),
        )
        for r in records
    }  # fmt: skip
    published = sorted(by_id[nid] for nid, _ in inserted.to_publish)
    keys = {k.removeprefix(prefix) for k in inserted.inserted_keys}
    skipped = {k.removeprefix(prefix): code for k, code in inserted.skipped.items()}
    return rows, published, keys, inserted.duplicates, skipped


async def both_ways(
    database_url: str, earlier: list[dict[str, Any]], batch: list[dict[str, Any]]
) -> None:
    store = await OutcomeStore.connect(database_url, min_size=2, max_size=4)
    try:
        results = []
        for way in ("one", "split"):
            prefix = f"{way}-{uuid.uuid4().hex[:8]}-"
            await store.insert([build(prefix, s) for s in earlier])
            rows = [build(prefix, s) for s in batch]
            redelivered = frozenset(prefix + key(s) for s in earlier)
            if way == "one":
                inserted = await store.insert(rows, redelivered)
            else:
                inserted = await batches.insert_shared(store, rows, redelivered, 2)
            results.append(await outcome(store, prefix, inserted))
        assert results[0] == results[1]
    finally:
        await store.close()


@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(earlier=st.lists(specs(), max_size=3), batch=st.lists(specs(), min_size=1, max_size=12))
def test_two_connections_store_what_one_insert_stores(
    database_url: str,
    earlier: list[dict[str, Any]],
    batch: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batches, "_SPLIT_ROWS", 1)  # split even the smallest batch
    asyncio.run(both_ways(database_url, earlier, batch))
