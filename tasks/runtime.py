"""Per-process clients for the workers, built on first use and rebuilt after fork."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from notify.country_breaker import CountryBreaker
from notify.redis_clients import sync_client
from notify.settings import Settings
from schemas import ConfigurationError, Provider
from tasks import limiter
from tasks.db import StoreRunner, WorkerStore
from tasks.providers.fcm_push import FcmPush
from tasks.providers.twilio_sms import TwilioSms
from tasks.providers.vonage_sms import VonageSms

if TYPE_CHECKING:
    from tasks.weights import ProviderWeights


@dataclass
class Runtime:
    settings: Settings
    db: WorkerStore
    sms: TwilioSms
    push: FcmPush
    pid: int
    # Provider calls of batch tasks run here: many in flight, few Celery messages.
    senders: ThreadPoolExecutor
    # Each SMS provider's sender's shared send rate (NOTIFY_SMS_SEGMENTS_PER_SECOND); a
    # provider absent here has no limit.
    rates: dict[str, limiter.SendRate] = field(default_factory=dict)
    vonage: VonageSms | None = None
    # The providers' current shares (tasks/weights.py); None: all to the first.
    weights: ProviderWeights | None = None

    def sms_provider(self, provider: str | None) -> TwilioSms | VonageSms:
        """The wrapper for the provider a row holds (rows from before version 7: Twilio)."""
        if provider in (None, Provider.TWILIO):
            return self.sms
        if provider == Provider.VONAGE and self.vonage is not None:
            return self.vonage
        raise ConfigurationError("config_error", f"SMS provider {provider!r} is not configured")

    def has_lookup(self, provider: str | None) -> bool:
        """Whether a send to this provider whose answer was lost can be looked up: Twilio's."""
        return provider in (None, Provider.TWILIO)

    def pick(self, count: int) -> list[str]:
        """A provider for each of `count` SMS rows claimed for the first time."""
        if self.weights is None:
            return [self.settings.sms_providers[0]] * count
        return [self.weights.pick() for _ in range(count)]

    def failover_target(self, provider: str | None) -> str | None:
        return None if self.weights is None else self.weights.failover_target(provider)

    # The pumping breaker (NOTIFY_SMS_COUNTRY_HOURLY_SEGMENTS); None: no limit.
    breaker: CountryBreaker | None = None


_lock = threading.Lock()
_current: Runtime | None = None


def runtime(settings: Settings) -> Runtime:
    """This process's runtime, built from the app's settings the first time it is asked for."""
    global _current
    with _lock:
        if _current is None or _current.pid != os.getpid():
            _current = _build(settings)
        return _current


def _build(settings: Settings) -> Runtime:
    from tasks.weights import ProviderWeights  # tasks.weights registers a task: import late

    client = sync_client(settings)
    limit = settings.sms_country_hourly_segments
    senders = {
        Provider.TWILIO.value: settings.sms_sender,
        Provider.VONAGE.value: settings.vonage_from,
    }
    rates = {}
    for provider in settings.sms_providers:
        rate = limiter.from_settings(
            client, senders.get(Provider(provider)), settings.sms_segments_per_second, provider
        )
        if rate is not None:
            rates[provider] = rate
    return Runtime(
        settings=settings,
        db=StoreRunner(settings.database_url, statement_cache_size=settings.statement_cache_size),
        sms=TwilioSms(settings),
        push=FcmPush(settings),
        pid=os.getpid(),
        senders=ThreadPoolExecutor(
            max_workers=settings.send_concurrency, thread_name_prefix="notify-send"
        ),
        rates=rates,
        vonage=VonageSms(settings) if Provider.VONAGE in settings.sms_providers else None,
        weights=ProviderWeights(client, settings) if len(settings.sms_providers) > 1 else None,
        breaker=None if limit is None else CountryBreaker(client, limit),
    )


def warm(settings: Settings) -> None:
    """Open the DB pool and load the SDKs before the first task, not during it."""
    rt = runtime(settings)
    rt.db.ping()
    if rt.settings.twilio_account_sid and rt.settings.twilio_auth_token:
        client, _ = rt.sms._client()
        _ = client.messages  # imports the Messages API modules (slow, once per process)


def reset() -> None:
    """Forget this process's clients (tests, and worker shutdown)."""
    global _current
    with _lock:
        if _current is not None and _current.pid == os.getpid():
            _current.senders.shutdown(wait=True)
            _current.db.close()
            _current.push.close()
            for rate in _current.rates.values():
                rate.client.close()
            if _current.weights is not None:
                _current.weights.client.close()
            if _current.breaker is not None:
                _current.breaker.client.close()
        _current = None
