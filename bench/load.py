"""Loading events and watching the group drain."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import psutil
import redis


def event_fields(n: int, tag: str, sent_at: float = 0.0) -> dict[str, str]:
    data = {
        "shipment_id": f"SHP-{n}",
        "delay_minutes": 45,
        "sent_at": round(sent_at, 6),
        "customer": {"name": "Ann", "phone": f"+1415555{n % 10000:04d}"},
    }
    return {"id": f"{tag}-{n}", "type": "shipment.delayed", "data": json.dumps(data)}


def load(client: redis.Redis, stream: str, count: int, tag: str, start: int = 0) -> None:
    """Pipelined XADD, 5,000 per round trip."""
    pipe = client.pipeline(transaction=False)
    for n in range(start, start + count):
        pipe.xadd(stream, event_fields(n, tag))  # type: ignore[arg-type]
        if (n + 1) % 5000 == 0:
            pipe.execute()
    pipe.execute()


@dataclass
class Sample:
    t: float
    lag: int
    pending: int
    done: int
    rss_mb: float
    cpu_s: float  # the process's user + system CPU time so far


def watch(
    client: redis.Redis,
    stream: str,
    group: str,
    total: int,
    pid: int,
    timeout: float = 600,
    interval: float = 0.2,
) -> list[Sample]:
    """Poll XINFO GROUPS until the group has read and acknowledged `total` entries."""
    proc = psutil.Process(pid)
    samples: list[Sample] = []
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        info: Any = client.xinfo_groups(stream)
        groups = [g for g in info if g["name"].decode() == group]
        if groups:
            g = groups[0]
            read = int(g["entries-read"] or 0)
            pending = int(g["pending"])
            lag = int(g["lag"]) if g["lag"] is not None else total - read
            rss = proc.memory_info().rss / 2**20
            cpu = proc.cpu_times()
            done = read - pending
            samples.append(Sample(time.monotonic(), lag, pending, done, rss, cpu.user + cpu.system))
            if read >= total and pending == 0:
                return samples
        time.sleep(interval)
    raise TimeoutError(f"group did not drain {total} entries in {timeout}s")


def _span(samples: list[Sample]) -> tuple[Sample, Sample]:
    """From the sample before the first with progress (it already holds some done work) to
    the last."""
    moving = [s for s in samples if s.done > 0]
    first = moving[0] if moving else samples[0]
    return samples[max(0, samples.index(first) - 1)], samples[-1]


def throughput(samples: list[Sample]) -> float:
    """Entries per second from the first sample with progress to the last."""
    before, last = _span(samples)
    return (last.done - before.done) / max(1e-9, last.t - before.t)


def cpu_per_entry(samples: list[Sample]) -> float:
    """The process's CPU seconds per entry over the same span: unlike the rate, it barely
    depends on what else the machine's cores are doing meanwhile."""
    before, last = _span(samples)
    return (last.cpu_s - before.cpu_s) / max(1, last.done - before.done)
