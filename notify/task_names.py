"""Task names: the wire contract between the sides. The consumer and beat publish by name;
the workers register these names. Neither side imports the other."""

from __future__ import annotations

from collections.abc import Sequence

from schemas import Channel

SEND_SMS = "tasks.send_sms"
SEND_PUSH = "tasks.send_push"
# Many rows of one channel per message: args [channel, [ids]].
SEND_BATCH = "tasks.send_batch"
DISPATCH_DUE = "tasks.dispatch_due"
SWEEP = "tasks.sweep"
PURGE = "tasks.purge"
PARTITIONS = "tasks.partitions"
LOOK_UP_RECEIPTS = "tasks.look_up_receipts"
WEIGH_SMS_PROVIDERS = "tasks.weigh_sms_providers"
BACKFILL_PRICES = "tasks.backfill_prices"

# The single-row task for each channel: retries, the sweeper and beat use these.
SEND_ONE: dict[Channel, str] = {Channel.SMS: SEND_SMS, Channel.PUSH: SEND_PUSH}


def batches(rows: Sequence[tuple[int, str]], size: int) -> list[tuple[str, list[int]]]:
    """Group (id, channel) rows into per-channel chunks of at most `size` ids, in order."""
    by_channel: dict[str, list[int]] = {}
    for nid, channel in rows:
        by_channel.setdefault(channel, []).append(nid)
    return [
        (channel, ids[start : start + size])
        for channel, ids in by_channel.items()
        for start in range(0, len(ids), size)
    ]
