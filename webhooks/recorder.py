"""Status callbacks to receipts, group-committed: each request answers after its receipt is
committed, and the requests that arrive during one write share the next statement."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence

from notify import logs
from notify.group_commit import GroupCommit
from notify.receipts import ReceiptStore
from schemas import Receipt, Settled, Status
from schemas.receipts import status_label
from webhooks import metrics

log = logs.get("webhooks")


class ReceiptRecorder:
    def __init__(self, receipts: ReceiptStore, max_rows: int = 500) -> None:
        self.receipts = receipts
        self.commits: GroupCommit[Receipt] = GroupCommit(self._write, max_rows)

    async def record(self, receipt: Receipt) -> None:
        """Return once the receipt is committed (and its row settled, if it can be)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.commits.add(receipt, done)
        await done

    async def _write(self, batch: Sequence[Receipt]) -> None:
        recorded = await self.receipts.record_callbacks(batch)
        settled = list(recorded.settled)
        for label, n in Counter(status_label(r.provider_status) for r in batch).items():
            metrics.RECEIPTS.labels("sms", label).inc(n)
        if recorded.unmatched:
            waiting = set(recorded.unmatched)
            metrics.UNMATCHED.inc(sum(1 for r in batch if r.provider_message_id in waiting))
            try:
                settled += await self.receipts.apply_unmatched(recorded.unmatched)
            except Exception as exc:  # noqa: BLE001 - they are stored; the SID's commit applies them
                log.warning(
                    "second look for unmatched receipts failed",
                    extra=logs.fields(sids=len(waiting), error=f"{type(exc).__name__}: {exc}"),
                )
        observe(settled)


def observe(settled: Sequence[Settled]) -> None:
    verbose = log.isEnabledFor(logging.INFO)
    for row in settled:
        if row.status is Status.DELIVERED and row.event_time is not None:
            seconds = (row.received_at - row.event_time).total_seconds()
            metrics.DELIVERY_SECONDS.labels(row.channel).observe(max(0.0, seconds))
        if verbose:
            log.info(
                "receipt settled " + row.status.value,
                extra=logs.fields(
                    notification_id=row.notification_id,
                    channel=row.channel,
                    status=row.status.value,
                    error_code=row.error_code,
                    provider_message_id=row.provider_message_id,
                ),
            )
