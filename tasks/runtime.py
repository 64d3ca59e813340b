"""Per-process clients for the workers, built on first use and rebuilt after fork."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from notify.redis_clients import sync_client
from notify.settings import Settings
from tasks import limiter
from tasks.db import StoreRunner, WorkerStore
from tasks.providers.fcm_push import FcmPush
from tasks.providers.twilio_sms import TwilioSms


@dataclass
class Runtime:
    settings: Settings
    db: WorkerStore
    sms: TwilioSms
    push: FcmPush
    pid: int
    # Provider calls of batch tasks run here: many in flight, few Celery messages.
    senders: ThreadPoolExecutor
    # The sender's shared send rate (NOTIFY_SMS_SEGMENTS_PER_SECOND); None: no limit.
    rate: limiter.SendRate | None = None


_lock = threading.Lock()
_current: Runtime | None = None


def runtime(settings: Settings) -> Runtime:
    """This process's runtime, built from the app's settings the first time it is asked for."""
    global _current
    with _lock:
        if _current is None or _current.pid != os.getpid():
            _current = Runtime(
                settings=settings,
                db=StoreRunner(
                    settings.database_url, statement_cache_size=settings.statement_cache_size
                ),
                sms=TwilioSms(settings),
                push=FcmPush(settings),
                pid=os.getpid(),
                senders=ThreadPoolExecutor(
                    max_workers=settings.send_concurrency, thread_name_prefix="notify-send"
                ),
                rate=limiter.from_settings(
                    sync_client(settings),
                    settings.sms_sender,
                    settings.sms_segments_per_second,
                ),
            )
        return _current


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
            if _current.rate is not None:
                _current.rate.client.close()
        _current = None
