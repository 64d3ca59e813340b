"""How far the consumer group is behind: length, lag, pending, read from Redis.

Both sides read it: the consumer, `notify status`, and the workers, which serve lag too so
it stays visible while no consumer runs (docs/interfaces.md section 5).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from notify.redis_clients import AsyncRedis

# Counting undelivered entries by hand costs one XRANGE of up to this many; past it, unknown.
COUNT_CAP = 10_000


@dataclass(frozen=True)
class GroupInfo:
    length: int
    lag: float  # NaN when Redis cannot say and we could not work it out
    lag_known: bool
    pending: int
    consumers: dict[str, int]  # pending per consumer; only when asked for
    last_delivered_id: str | None = None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _count_after(client: AsyncRedis, stream: str, last_id: str, cap: int) -> int | None:
    """Count undelivered entries by hand when XINFO cannot (deletions); None past `cap`."""
    entries: Any = await client.xrange(stream, min=f"({last_id}", max="+", count=cap + 1)
    return len(entries) if len(entries) <= cap else None


async def read_group_info(
    client: AsyncRedis,
    stream: str,
    group: str,
    *,
    count_cap: int = COUNT_CAP,
    with_consumers: bool = False,
) -> GroupInfo:
    """XINFO GROUPS' lag, else a hand count, else NaN with `lag_known` False: never a made-up
    0. A missing group is unknown too. A missing stream raises (Redis: no such key).

    `with_consumers` adds XINFO CONSUMERS (`notify status`). The gauges every process samples
    leave it out: its reply grows with the group, and every process would read it."""
    length = int(await client.xlen(stream))
    groups: Any = await client.xinfo_groups(stream)
    mine = next((g for g in groups if _text(g["name"]) == group), None)
    if mine is None:
        return GroupInfo(length, math.nan, False, 0, {})
    lag = mine.get("lag")
    if lag is None:
        lag = await _count_after(client, stream, _text(mine["last-delivered-id"]), count_cap)
    consumers = (
        {_text(c["name"]): int(c["pending"]) for c in await client.xinfo_consumers(stream, group)}
        if with_consumers
        else {}
    )
    return GroupInfo(
        length=length,
        lag=float(lag) if lag is not None else math.nan,
        lag_known=lag is not None,
        pending=int(mine["pending"]),
        consumers=consumers,
        last_delivered_id=_text(mine["last-delivered-id"]),
    )
