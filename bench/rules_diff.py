"""`notify rules diff` speed: events/s with one rule changed and with every rule changed.

Every event is a shipment.delayed, which three of the four bundled rules listen to, so each
one reaches the changed rule: the worst case for the optimisation, not a flattering mix.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from bench.env import ROOT, BenchEnv
from rules.ruleset import RuleSet, load_text
from rules.tools.diff import Differ, Undecodable, compare, plan, route_each
from rules.tools.diff_events import stream_window
from schemas import Event
from schemas.decoding import decode_entry

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
NAIVE_EVENTS = 20_000  # routing everything twice is slow; a sample gives its rate


def fields(n: int) -> dict[bytes, bytes]:
    # 5,000 customers: a day's traffic repeats people, as the phone-number cache assumes.
    data = {
        "shipment_id": f"SHP-{n}",
        "delay_minutes": 15 + n % 90,
        "customer": {"name": f"Customer {n % 5000}", "phone": f"+1415555{n % 5000:04d}",
                     "push_tokens": [f"tok-{n % 5000}"]},
    }  # fmt: skip
    return {b"id": f"evt-{n}".encode(), b"type": b"shipment.delayed",
            b"data": json.dumps(data).encode()}  # fmt: skip


def rule_files() -> tuple[RuleSet, RuleSet, RuleSet]:
    """The bundled rules; with delay-sms's body changed; with every rule's body changed."""
    text = (ROOT / "rules.yaml").read_text()
    one = text.replace("late.", "late!", 1)
    every = text.replace('body: "', 'body: "Update: ')
    return load_text(text, "old.yaml"), load_text(one, "one.yaml"), load_text(every, "all.yaml")


def rate(count: int, run: Callable[[], object], clock: Callable[[], float] = time.process_time
         ) -> float:  # fmt: skip
    """Events per second of this process's CPU time: the machine's other load does not count."""
    started = clock()
    run()
    return count / (clock() - started)


def _diff(old: RuleSet, new: RuleSet, events: Iterable[Event]) -> Differ:
    differ = Differ(plan(old, new))
    for event in events:
        differ.add(event)
    return differ


def _naive(old: RuleSet, new: RuleSet, events: list[Event]) -> None:
    """Every event through all of both files: what the optimisation is measured against."""
    for e in events:
        kw: dict[str, Any] = {"now": e.time, "default_region": "US",
                              "stale_after": timedelta(hours=1)}  # fmt: skip
        compare(e, route_each(e, old, **kw), route_each(e, new, **kw))


def _from_stream(env: BenchEnv, old: RuleSet, new: RuleSet, count: int) -> float:
    """The whole `--since` path: XRANGE pages from a real Redis, decode, compare."""
    client = redis.Redis.from_url(env.redis_url)
    stream = f"{env.stream}-rules-diff"
    try:
        pipe = client.pipeline(transaction=False)
        for n in range(count):
            pipe.xadd(stream, fields(n))  # type: ignore[arg-type]
            if (n + 1) % 5000 == 0:
                pipe.execute()
        pipe.execute()
        differ = Differ(plan(old, new))

        def run() -> None:
            now = datetime.now(UTC)
            for item in stream_window(client, stream, since=timedelta(hours=1), now=now,
                                      max_bytes=65536):  # fmt: skip
                if isinstance(item, Undecodable):
                    differ.dead_letter(item)
                else:
                    differ.add(item)

        per_s = rate(count, run, time.perf_counter)  # wall clock: waiting on Redis counts
        assert differ.report.events == count, differ.report.events
        return per_s
    finally:
        client.delete(stream)
        client.close()


def _scenario(old: RuleSet, new: RuleSet, raw: list[dict[bytes, bytes]], start: int,
              events: list[Event]) -> dict[str, Any]:  # fmt: skip
    _diff(old, new, events[:1000])  # warm the template and phone-number caches
    sample = events[:NAIVE_EVENTS]
    result: list[Differ] = []
    figures: dict[str, Any] = {
        "compare_per_s": rate(len(events), lambda: result.append(_diff(old, new, events))),
        "decode_and_compare_per_s": rate(len(raw), lambda: _diff(
            old, new, (decode_entry(f"{start + n}-0", f, 65536) for n, f in enumerate(raw)))),
        "naive_per_s": rate(len(sample), lambda: _naive(old, new, sample)),
    }  # fmt: skip
    figures["differences"] = result[0].report.differences
    return figures


def rules_diff(env: BenchEnv, count: int) -> dict[str, Any]:
    old, one, every = rule_files()
    raw = [fields(n) for n in range(count)]
    start = int(T0.timestamp() * 1000)
    events = [decode_entry(f"{start + n}-0", f, 65536) for n, f in enumerate(raw)]
    return {
        "events": count,
        "one_changed": _scenario(old, one, raw, start, events),
        "all_changed": _scenario(old, every, raw, start, events),
        "stream_one_changed_per_s": _from_stream(env, old, one, count),
    }
