"""`notify_stream_lag`, `notify_stream_pending` and `notify_stream_lag_unknown`, as the
consumer and the workers both serve them: a sampler reads the group's info every few
seconds (`NOTIFY_STREAM_SAMPLE_SECONDS`), and a Prometheus collector reports the latest
reading.

A collector rather than Gauges: in a prefork worker's multiprocess mode a Gauge is written
by every process (with a `pid` label); a collector registered on the registry that serves
/metrics reports the one reading of the process that samples, exactly once. A reading that
failed, or is too old (a wedged sampler), is reported as unknown: lag NaN and
`notify_stream_lag_unknown` 1, never the last number and never 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from notify import logs
from notify.redis_clients import AsyncRedis
from notify.stream_info import GroupInfo, read_group_info

log = logs.get("metrics")

_LABELS = ("stream", "group")
READ_TIMEOUT = 5.0  # seconds; a read that takes longer counts as failed


class StreamGauges(Collector):
    """The latest reading of one stream and group, as three gauges."""

    def __init__(
        self,
        stream: str,
        group: str,
        *,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.group = group
        self.interval = interval
        # A live sampler refreshes within interval + READ_TIMEOUT; allow a few misses.
        self.max_age = 3 * max(interval, READ_TIMEOUT)
        self._clock = clock
        # One tuple, swapped whole: the sampler writes it, the HTTP thread reads it.
        self._reading: tuple[GroupInfo | None, float] | None = None

    def record(self, info: GroupInfo | None) -> None:
        """A reading; None when the stream could not be read."""
        self._reading = (info, self._clock())

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "notify_stream_lag",
                "Entries not yet delivered to the group (NaN when unknown)",
                labels=_LABELS,
            ),
            GaugeMetricFamily(
                "notify_stream_lag_unknown",
                "1 when the lag could not be determined",
                labels=_LABELS,
            ),
            GaugeMetricFamily(
                "notify_stream_pending",
                "Entries delivered but not yet acknowledged",
                labels=_LABELS,
            ),
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(self._families())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        reading = self._reading
        if reading is None:  # not sampled yet: say nothing rather than something false
            return iter(())
        info, at = reading
        if info is not None and self._clock() - at > self.max_age:
            info = None
        lag, unknown, pending = self._families()
        labels = [self.stream, self.group]
        known = info is not None and info.lag_known
        lag.add_metric(labels, info.lag if info is not None else math.nan)
        unknown.add_metric(labels, 0.0 if known else 1.0)
        pending.add_metric(labels, float(info.pending) if info is not None else math.nan)
        return iter((lag, unknown, pending))


async def sample(
    client: AsyncRedis,
    gauges: StreamGauges,
    stop: asyncio.Event,
    read: Callable[[], Awaitable[GroupInfo]] | None = None,
) -> None:
    """Read the group's info into `gauges` every `gauges.interval` seconds until `stop`.

    `read` replaces the plain reading (the consumer's stream also learns its position)."""
    while not stop.is_set():
        info: GroupInfo | None
        reading = (
            read() if read is not None else read_group_info(client, gauges.stream, gauges.group)
        )
        try:
            info = await asyncio.wait_for(reading, timeout=READ_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - metrics must never kill their process
            info = None
            log.debug("could not read stream info", extra=logs.fields(error=repr(exc)))
        gauges.record(info)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=gauges.interval)
