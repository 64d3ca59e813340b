"""Receipts without servers: the status table, the SQL it feeds, beat's lookups, the outbox."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest

from notify.migrations import MIGRATIONS
from notify.outbox import entry
from notify.receipts import AwaitingReceipt
from notify.settings import Settings
from schemas import (
    TERMINAL,
    TRANSITIONS,
    ConfigurationError,
    PermanentDeliveryError,
    ReceiptSource,
    Status,
    TransientDeliveryError,
)
from schemas.receipts import SETTLEABLE, SETTLES, settles, status_label
from tasks.receipts import look_up
from tasks.runtime import Runtime
from tasks.testing import FakeWorkerStore


def test_a_receipt_only_moves_a_sent_row_forward() -> None:
    assert {Status.SENT} == SETTLEABLE
    for status in SETTLES.values():
        assert status in TRANSITIONS[Status.SENT]
        assert TRANSITIONS[status] == frozenset()  # final: no receipt moves it back
    assert settles("delivered") is Status.DELIVERED
    assert settles("sent") is None and settles("queued") is None
    assert status_label("undelivered") == "undelivered" and status_label("<script>") == "other"


def test_the_outbox_triggers_publish_exactly_the_terminal_statuses() -> None:
    """The migration spells the published statuses out (migrations never change); they must
    be schemas.TERMINAL, and the status CHECK must allow every Status."""
    sql = dict((v, s) for v, _, s in MIGRATIONS)[2]
    for listed in re.findall(r"WHERE n\.status IN \(([^)]*)\)", sql):
        assert set(re.findall(r"'(\w+)'", listed)) == {s.value for s in TERMINAL}
    check = re.search(r"CHECK \(status IN \(([^)]*)\)\)", sql)
    assert check is not None
    assert set(re.findall(r"'(\w+)'", check.group(1))) == {s.value for s in Status}


def test_an_outcome_entry_has_the_cloudevents_fields() -> None:
    record = {
        "outcome_id": "42-delivered",
        "type": "notification.delivered",
        "subject": "SHP-1",
        "time": datetime(2026, 11, 25, 12, 0, tzinfo=UTC),
        "data": '{"notification_id": 42}',
    }
    assert entry(record) == {
        "id": "42-delivered",
        "type": "notification.delivered",
        "source": "notify",
        "specversion": "1.0",
        "subject": "SHP-1",
        "time": "2026-11-25T12:00:00+00:00",
        "data": '{"notification_id": 42}',
    }
    assert "subject" not in entry({**record, "subject": None})


class FakeTwilio:
    """fetch_status answers from a script: (status, code) or an exception, per SID."""

    def __init__(self, answers: dict[str, tuple[str, str | None] | Exception]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def fetch_status(self, sid: str) -> tuple[str, str | None]:
        self.asked.append(sid)
        answer = self.answers[sid]
        if isinstance(answer, Exception):
            raise answer
        return answer


def lookups(store: FakeWorkerStore, twilio: FakeTwilio, per_run: int = 100) -> dict[str, int]:
    settings = Settings(receipt_lookups_per_run=per_run)
    rt = Runtime(settings=settings, db=store, sms=twilio, push=None,  # type: ignore[arg-type]
                 pid=0, senders=ThreadPoolExecutor(1))  # fmt: skip
    return look_up(rt)


def awaiting(*sids: str) -> list[AwaitingReceipt]:
    return [AwaitingReceipt(n, sid) for n, sid in enumerate(sids, start=1)]


def test_lookups_settle_rows_and_record_that_the_status_came_from_a_lookup() -> None:
    store = FakeWorkerStore()
    store.awaiting = awaiting("SM1", "SM2", "SM3", "SM4")
    twilio = FakeTwilio({
        "SM1": ("delivered", None), "SM2": ("undelivered", "30003"), "SM3": ("sent", None),
        "SM4": PermanentDeliveryError("20404", "no such message"),
    })  # fmt: skip
    counts = lookups(store, twilio)
    assert counts == {"settled": 2, "unsettled": 1, "not_found": 1}
    assert [(r.provider_message_id, r.provider_status, r.error_code) for r in store.lookups] == [
        ("SM1", "delivered", None),
        ("SM2", "undelivered", "30003"),
        ("SM3", "sent", None),
    ]
    assert {r.source for r in store.lookups} == {ReceiptSource.LOOKUP}
    assert store.looked_up == [1, 2, 3, 4]  # an unknown SID counts, so it is not asked forever


@pytest.mark.parametrize(
    "stop",
    [TransientDeliveryError("20429", "Too Many Requests", 5.0),
     TransientDeliveryError("timeout", "read timed out"),
     ConfigurationError("20003", "Authenticate")],
)  # fmt: skip
def test_a_run_stops_at_a_429_and_leaves_the_rest_untouched(stop: Exception) -> None:
    store = FakeWorkerStore()
    store.awaiting = awaiting("SM1", "SM2", "SM3")
    twilio = FakeTwilio({"SM1": ("delivered", None), "SM2": stop, "SM3": ("delivered", None)})
    counts = lookups(store, twilio)
    assert twilio.asked == ["SM1", "SM2"]
    assert counts["stopped"] == 1 and counts["settled"] == 1
    assert store.looked_up == [1]  # SM2 and SM3 wait, uncounted, for the next run


def test_a_run_makes_at_most_the_configured_number_of_lookups() -> None:
    store = FakeWorkerStore()
    store.awaiting = awaiting(*(f"SM{n}" for n in range(10)))
    twilio = FakeTwilio({f"SM{n}": ("sent", None) for n in range(10)})
    lookups(store, twilio, per_run=3)
    assert twilio.asked == ["SM0", "SM1", "SM2"]


def test_nothing_due_asks_nothing() -> None:
    store = FakeWorkerStore()
    twilio = FakeTwilio({})
    counts: dict[str, Any] = lookups(store, twilio)
    assert twilio.asked == [] and counts == {"settled": 0, "unsettled": 0}
