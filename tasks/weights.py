"""The SMS providers' current shares of new traffic: kept in Redis, shared by every worker.

Beat's `weigh_sms_providers` (every NOTIFY_SMS_HEALTH_INTERVAL_SECONDS) reads each
provider's recent record from Postgres, moves points with `tasks.health.reweigh`, stores
them here and logs each change. Workers read them (cached for `CACHE_SECONDS`) when a row is
first claimed and when one fails over; without Redis they fall back to the configured shares.
Both export `notify_sms_provider_weight{provider}` (0-1) and
`notify_sms_provider_healthy{provider}`.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Mapping

import redis
from prometheus_client import Gauge

from notify import logs, task_names
from notify.outage import OutageLog
from notify.redis_clients import SyncRedis
from notify.settings import Settings
from tasks.app import app
from tasks.health import reweigh
from tasks.providers import choice
from tasks.runtime import Runtime, runtime

log = logs.get("weights")

KEY = "notify:sms-provider-weights"
CACHE_SECONDS = 1.0

WEIGHT = Gauge(
    "notify_sms_provider_weight",
    "Share (0-1) of new SMS each provider gets now",
    ["provider"],
    multiprocess_mode="max",
)
HEALTHY = Gauge(
    "notify_sms_provider_healthy",
    "1 when the provider's recent sends and receipts are healthy, else 0",
    ["provider"],
    multiprocess_mode="min",
)

_OUTAGE = OutageLog("redis", "new SMS get the configured provider shares")


class ProviderWeights:
    """The points (of 100) per provider, as beat last stored them."""

    def __init__(self, client: SyncRedis, settings: Settings) -> None:
        self.client = client
        self.order = settings.sms_providers
        self.base = dict(settings.sms_shares)
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, float]] | None = None
        for provider in self.order:
            WEIGHT.labels(provider).set(self.base.get(provider, 0.0) / 100)
            HEALTHY.labels(provider).set(1)

    def current(self) -> dict[str, float]:
        if len(self.order) < 2:
            return self.base
        now = time.monotonic()
        with self._lock:
            if self._cached is not None and now - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
        points, healthy = self._read()
        with self._lock:
            self._cached = (now, points)
        export(points, healthy)
        return points

    def _read(self) -> tuple[dict[str, float], Mapping[str, bool]]:
        try:
            raw = self.client.get(KEY)
            _OUTAGE.ended()
        except redis.RedisError as exc:
            _OUTAGE.started(exc)
            return self.base, {}
        if not raw:
            return self.base, {}
        stored = json.loads(raw)
        points = {p: float(stored["points"].get(p, 0.0)) for p in self.order}
        if sum(points.values()) <= 0:
            return self.base, {}
        return points, {p: bool(v) for p, v in stored.get("healthy", {}).items()}

    def store(self, points: Mapping[str, float], healthy: Mapping[str, bool]) -> None:
        value = json.dumps({"points": dict(points), "healthy": dict(healthy)})
        self.client.set(KEY, value)
        with self._lock:
            self._cached = (time.monotonic(), dict(points))
        export(points, healthy)

    def pick(self, rng: random.Random | None = None) -> str:
        return choice.pick(self.current(), self.order, rng)

    def failover_target(self, current: str | None) -> str | None:
        return choice.failover_target(current, self.order, self.current())


def export(points: Mapping[str, float], healthy: Mapping[str, bool]) -> None:
    total = sum(points.values()) or 1.0
    for provider, value in points.items():
        WEIGHT.labels(provider).set(value / total)
        HEALTHY.labels(provider).set(1 if healthy.get(provider, True) else 0)


@app.task(name=task_names.WEIGH_SMS_PROVIDERS, shared=False, ignore_result=True)
def weigh_sms_providers() -> dict[str, float]:
    return weigh(runtime(app.settings))


def weigh(rt: Runtime) -> dict[str, float]:
    """One run: the evidence, the new points, stored and logged (each change a line)."""
    s = rt.settings
    order = s.sms_providers
    if len(order) < 2 or rt.weights is None:
        return {}
    evidence = rt.db.provider_evidence(order, s.sms_slow_delivery_seconds)
    before = rt.weights.current()
    after = reweigh(before, dict(s.sms_shares), evidence, order)
    healthy = {p: evidence[p].healthy for p in order}
    rt.weights.store(after, healthy)
    for provider in order:
        if abs(after[provider] - before.get(provider, 0.0)) >= 0.05:
            e = evidence[provider]
            level = log.info if after[provider] > before.get(provider, 0.0) else log.warning
            level(
                "sms provider weight changed",
                extra=logs.fields(
                    provider=provider,
                    before=round(before.get(provider, 0.0), 1),
                    after=round(after[provider], 1),
                    erring=e.erring,
                    slow=e.slow_delivery,
                    sends=e.sends,
                    errors=e.errors,
                    judged=e.judged,
                    late=e.slow,
                ),
            )
    return after
