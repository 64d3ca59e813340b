"""notify.stream_gauges: the lag collector both sides serve, and its sampler, on fakeredis."""

from __future__ import annotations

import asyncio
import math

import fakeredis
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from notify.settings import Settings
from notify.stream_gauges import READ_TIMEOUT, StreamGauges, sample
from notify.stream_info import GroupInfo

LABELS = {"stream": "events", "group": "notifications"}
NAMES = ("notify_stream_lag", "notify_stream_lag_unknown", "notify_stream_pending")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def served(gauges: StreamGauges) -> dict[str, float]:
    """What a registry serving `gauges` exposes: name -> value, one sample each at most."""
    registry = CollectorRegistry()
    registry.register(gauges)
    text = generate_latest(registry).decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            assert s.name not in out and s.labels == LABELS
            out[s.name] = s.value
    return out


def info(lag: float = 7.0, *, known: bool = True, pending: int = 3) -> GroupInfo:
    return GroupInfo(length=10, lag=lag, lag_known=known, pending=pending, consumers={})


def test_nothing_is_served_before_the_first_reading() -> None:
    assert served(StreamGauges("events", "notifications", interval=5)) == {}


def test_a_reading_is_served_once_per_gauge() -> None:
    gauges = StreamGauges("events", "notifications", interval=5)
    gauges.record(info())
    assert served(gauges) == {
        "notify_stream_lag": 7.0,
        "notify_stream_lag_unknown": 0.0,
        "notify_stream_pending": 3.0,
    }


def test_a_lag_redis_cannot_give_is_nan_and_flagged_never_zero() -> None:
    gauges = StreamGauges("events", "notifications", interval=5)
    gauges.record(info(math.nan, known=False))
    values = served(gauges)
    assert math.isnan(values["notify_stream_lag"]) and values["notify_stream_lag_unknown"] == 1
    assert values["notify_stream_pending"] == 3


@pytest.mark.parametrize("why", ["failed", "stale"])
def test_a_failed_or_stale_reading_is_unknown(why: str) -> None:
    clock = Clock()
    gauges = StreamGauges("events", "notifications", interval=5, clock=clock)
    gauges.record(info())
    if why == "failed":
        gauges.record(None)
    else:
        clock.now += gauges.max_age + 0.1  # the sampler stopped refreshing
    values = served(gauges)
    assert math.isnan(values["notify_stream_lag"]) and math.isnan(values["notify_stream_pending"])
    assert values["notify_stream_lag_unknown"] == 1


def test_a_reading_within_max_age_is_served_as_it_was() -> None:
    clock = Clock()
    gauges = StreamGauges("events", "notifications", interval=5, clock=clock)
    gauges.record(info())
    clock.now += gauges.max_age - 0.1
    assert served(gauges)["notify_stream_lag"] == 7.0
    assert gauges.max_age == 3 * max(5, READ_TIMEOUT) <= 15 * 3


def test_the_names_are_declared_so_a_second_exporter_clashes() -> None:
    registry = CollectorRegistry()
    registry.register(StreamGauges("events", "notifications", interval=5))
    with pytest.raises(ValueError, match="Duplicated"):
        registry.register(StreamGauges("events", "notifications", interval=5))


@pytest.mark.asyncio
async def test_the_sampler_reads_until_stopped_and_reports_a_missing_stream_as_unknown() -> None:
    client = fakeredis.FakeAsyncRedis()
    gauges = StreamGauges("events", "notifications", interval=0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(sample(client, gauges, stop))

    async def read(name: str, expected: float) -> None:
        while served(gauges).get(name) != expected:
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(read("notify_stream_lag_unknown", 1), timeout=5)  # no stream yet
        await client.xgroup_create("events", "notifications", id="0", mkstream=True)
        for n in range(4):
            await client.xadd("events", {"n": n})
        await asyncio.wait_for(read("notify_stream_lag", 4), timeout=5)
        assert served(gauges)["notify_stream_lag_unknown"] == 0
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=1)
        await client.aclose()


@pytest.mark.parametrize("raw", ["0", "-1", "15.5", "60"])
def test_a_sample_interval_that_breaks_the_15_s_promise_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="NOTIFY_STREAM_SAMPLE_SECONDS"):
        Settings.from_env({"NOTIFY_STREAM_SAMPLE_SECONDS": raw})


def test_the_sample_interval_defaults_to_5_s() -> None:
    assert Settings.from_env({}).stream_sample_seconds == 5.0
    assert Settings.from_env({"NOTIFY_STREAM_SAMPLE_SECONDS": "15"}).stream_sample_seconds == 15
