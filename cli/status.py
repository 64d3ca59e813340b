"""`notify status`: the stream, its lag, pending entries per consumer, and recent outcomes."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from typing import Any

from notify.redis_clients import async_client
from notify.settings import Settings
from notify.store import OutcomeStore
from notify.stream_info import read_group_info


async def collect(settings: Settings) -> dict[str, Any] | None:
    client = async_client(settings)
    try:
        if not await client.exists(settings.stream):
            return None
        groups = await client.xinfo_groups(settings.stream)
        names = {g["name"].decode() if isinstance(g["name"], bytes) else g["name"] for g in groups}
        if settings.group not in names:
            return None
        info = await read_group_info(client, settings.stream, settings.group, with_consumers=True)
        dead = int(await client.xlen(settings.dlq_stream))
    finally:
        await client.aclose()
    store = await OutcomeStore.connect(
        settings.database_url,
        min_size=1,
        max_size=1,
        statement_cache_size=settings.statement_cache_size,
    )
    try:
        counts = await store.status_counts(since_seconds=3600)
    finally:
        await store.close()
    return {
        "stream": settings.stream,
        "group": settings.group,
        "length": info.length,
        "lag": None if math.isnan(info.lag) else int(info.lag),
        "pending": info.pending,
        "consumers": info.consumers,
        "dead_letters": dead,
        "notifications_last_hour": counts,
    }


def main(settings: Settings, args: argparse.Namespace) -> int:
    report = asyncio.run(collect(settings))
    if report is None:
        print(
            f"consumer group {settings.group!r} on stream {settings.stream!r} does not exist "
            "(has `notify consume` ever run?)",
            file=sys.stderr,
        )
        return 2
    if args.json:
        print(json.dumps(report))
        return 0
    lag = "unknown" if report["lag"] is None else report["lag"]
    print(f"stream {report['stream']}  group {report['group']}")
    print(
        f"  length {report['length']}  lag {lag}  pending {report['pending']}  "
        f"dead letters {report['dead_letters']}"
    )
    for name, pending in sorted(report["consumers"].items()):
        print(f"  consumer {name}: {pending} pending")
    print("notifications updated in the last hour:")
    for status, n in sorted(report["notifications_last_hour"].items()):
        print(f"  {status:<12} {n}")
    return 0
