"""In-memory stand-ins for tests of task logic (like dramatiq's StubBroker): no servers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

import msgspec

from notify.costs import Price, Priced, Unpriced
from notify.partitions import Upkeep
from notify.provider_health import Evidence
from notify.receipts import AwaitingReceipt
from notify.store import Finished
from schemas import (
    IN_FLIGHT,
    SUPPRESSED,
    Channel,
    Notification,
    Provider,
    Receipt,
    Resolution,
    Settled,
    Status,
)
from schemas.receipts import SETTLES


class FakeWorkerStore:
    """A `WorkerStore` over a dict of rows. `claimable` holds each pending row as a claim
    returns it (already `sending`, its attempt counted); a claim takes it out.

    `finished` and `resolved` record what tasks wrote, as dicts with an `id` key;
    `record_failures` are raised by the next `record` calls, one each (a Postgres blip).
    `awaiting` holds `sent` SMS whose receipt is overdue; `lookups` what lookups recorded;
    `holders` maps provider message ids to the rows that hold them.
    Rows whose (channel, recipient) is in `suppressed` come back `skipped` from a claim and
    from `dispatch_due`, as the real statements return them.
    """

    def __init__(self, claimable: dict[int, Notification] | None = None) -> None:
        self.claimable: dict[int, Notification] = dict(claimable or {})
        self.scheduled: dict[int, Notification] = {}
        self.stuck: list[Notification] = []
        self.finished: list[dict[str, Any]] = []
        self.resolved: list[dict[str, Any]] = []
        self.record_failures: list[Exception] = []
        # Rows a limiter sent back to pending: id -> (attempt undone, slot kept on the row).
        self.released: dict[int, tuple[int, datetime | None]] = {}
        self.suppressed: set[tuple[Channel, str]] = set()
        self._claimed: dict[int, Notification] = {}
        self.awaiting: list[AwaitingReceipt] = []
        self.lookups: list[Receipt] = []
        self.looked_up: list[int] = []
        self.holders: dict[str, int] = {}
        # Each SMS provider's recent record, as `provider_evidence` returns it.
        self.evidence: dict[str, Evidence] = {}
        # (notification, attempt) marked `calling`: a call to a provider without lookup began.
        self.calling: set[tuple[int, int]] = set()
        self.pings = 0
        self.closed = False
        # Rows a paused country held back: id -> error code.
        self.held_back: dict[int, str] = {}
        self.awaiting_price: list[Unpriced] = []
        self.prices: list[Price] = []

    def ping(self) -> None:
        self.pings += 1

    def claim(self, notification_id: int, pick: str | None = None) -> Notification | None:
        row = self.claimable.pop(notification_id, None)
        if row is None:
            return None
        if row.provider is None and pick is not None:
            row = msgspec.structs.replace(row, provider=Provider(pick))
        if (row.channel, row.recipient) in self.suppressed:
            return msgspec.structs.replace(
                row, status=Status.SKIPPED, attempts=row.attempts - 1, error_code=SUPPRESSED
            )
        self._claimed[notification_id] = row
        return row

    def claim_many(
        self, ids: Sequence[int], picks: Sequence[str | None] | None = None
    ) -> list[Notification]:
        chosen = list(picks) if picks is not None else [None] * len(ids)
        claimed = (self.claim(nid, pick) for nid, pick in zip(ids, chosen, strict=True))
        return [row for row in claimed if row is not None]

    def record(self, item: Finished) -> None:
        if self.record_failures:
            raise self.record_failures.pop(0)
        self.finished.append({**asdict(item), "id": item.notification_id})

    def release(self, held: Sequence[tuple[int, int, datetime | None]]) -> int:
        """Back to pending: the same row is claimable again, with the same attempt number."""
        for nid, attempt, slot_at in held:
            self.released[nid] = (attempt, slot_at)
            self.claimable[nid] = self._claimed.pop(nid)
        return len(held)

    def hold_back(self, held: Sequence[tuple[int, int]], code: str, message: str) -> int:
        """Claimed rows skipped with `code`, the claim undone (as `release` does)."""
        for nid, _ in held:
            row = self._claimed.pop(nid, None)
            if row is not None:
                self.held_back[nid] = code
        return len(held)

    def unpriced(self, *, limit: int, interval_seconds: float, max_lookups: int) -> list[Unpriced]:
        return self.awaiting_price[:limit]

    def record_prices(self, prices: Sequence[Price]) -> list[Priced]:
        self.prices.extend(prices)
        return []

    def due_slots(self, *, within: float, limit: int) -> list[tuple[int, Channel, datetime]]:
        return []

    def taken(self, provider_message_ids: Sequence[str], *, besides: int) -> set[str]:
        return {sid for sid in provider_message_ids if self.holders.get(sid, besides) != besides}

    def dispatch_due(
        self, *, now: datetime, stale_seconds: float, limit: int
    ) -> list[tuple[int, Channel, Status]]:
        due = [r for r in self.scheduled.values() if r.send_at is not None and r.send_at <= now]
        out: list[tuple[int, Channel, Status]] = []
        for row in sorted(due, key=lambda r: r.send_at or now)[:limit]:
            del self.scheduled[row.id]
            stale = row.send_at is not None and (now - row.send_at).total_seconds() > stale_seconds
            status = Status.FAILED if stale else Status.PENDING
            if (row.channel, row.recipient) in self.suppressed:
                status = Status.SKIPPED
            if status is Status.PENDING:
                claimed = msgspec.structs.replace(
                    row, status=Status.SENDING, attempts=row.attempts + 1
                )
                self.claimable[row.id] = claimed
            out.append((row.id, row.channel, status))
        return out

    def stuck_pending(self, *, older_than: float, limit: int) -> list[tuple[int, Channel]]:
        return []

    def stuck_sending(self, *, older_than: float, limit: int) -> list[Notification]:
        return [r for r in self.stuck if r.status in IN_FLIGHT][:limit]

    def resolve_sending(self, row: Notification, resolution: Resolution) -> bool:
        self.resolved.append({"id": row.id, **msgspec.structs.asdict(resolution)})
        return True

    def delete_older_than(self, *, days: float, limit: int) -> int:
        return 0

    def keep_partitions(self, *, retention_days: float) -> Upkeep:
        return Upkeep(created=[], dropped=[], busy=[], newest_end=None)

    def forget_expired_throttles(self, *, limit: int) -> int:
        return 0

    def delete_heard_older_than(self, *, days: float, limit: int) -> int:
        return 0

    def awaiting_receipt(
        self, *, older_than: float, limit: int, max_lookups: int
    ) -> list[AwaitingReceipt]:
        return self.awaiting[:limit]

    def record_lookups(
        self, receipts: Sequence[Receipt], looked_up: Sequence[int]
    ) -> list[Settled]:
        self.lookups.extend(receipts)
        self.looked_up.extend(looked_up)
        settled = []
        for r in receipts:
            status = SETTLES.get(r.provider_status)
            if status is not None and r.notification_id is not None:
                settled.append(
                    Settled(
                        notification_id=r.notification_id, channel="sms", status=status,
                        error_code=r.error_code, provider_message_id=r.provider_message_id,
                        event_time=None, received_at=r.received_at,
                    )
                )  # fmt: skip
        self.awaiting = [a for a in self.awaiting if a.notification_id not in set(looked_up)]
        return settled

    def provider_evidence(
        self, providers: Sequence[str], slow_seconds: float
    ) -> dict[str, Evidence]:
        return {p: self.evidence.get(p, Evidence()) for p in providers}

    def mark_calling(self, notification_id: int, attempt: int) -> None:
        self.calling.add((notification_id, attempt))

    def called(self, notification_id: int, attempt: int) -> bool:
        return (notification_id, attempt) in self.calling

    def close(self) -> None:
        self.closed = True
