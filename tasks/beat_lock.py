"""Beat stays a singleton: a second `celery -A tasks beat` started by mistake stands by.

The beat that holds a lock in Redis (`REDIS_URL`, one key per task queue) sends the periodic
tasks; it renews the lock on every tick, at least every third of LOCK_SECONDS. Any other
beat checks the lock every few seconds and sends nothing until it can take it: when the
holder stops (it releases the lock) or dies (the lock expires after LOCK_SECONDS).
RedBeat would do the same and keep the schedule in Redis too; the schedule here is code,
so a lock is all that is needed.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import redis
from celery.beat import PersistentScheduler

from notify import logs
from notify.redis_clients import sync_client

log = logs.get("beat")

LOCK_SECONDS = 10.0

# Take the lock if free, renew it if ours; 1 if we hold it now, else 0.
_HOLD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def lock_key(task_queue: str) -> str:
    return f"notify.beat.{task_queue}"


class SingletonScheduler(PersistentScheduler):  # type: ignore[misc]  # Celery ships no types
    """PersistentScheduler that ticks only while it holds the beat lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = self.app.settings
        self._key = lock_key(settings.task_queue)
        self._token = uuid.uuid4().hex
        self._redis = sync_client(settings, socket_timeout=5)
        self._holding: bool | None = None  # unknown until the first tick

    def _hold(self) -> bool:
        try:
            held = bool(
                self._redis.eval(_HOLD, 1, self._key, self._token, int(LOCK_SECONDS * 1000))
            )
        except redis.RedisError as exc:
            log.warning("beat lock unreachable; sending nothing", extra=logs.fields(error=str(exc)))
            held = False
        if held != self._holding:
            if held:
                log.info("beat lock taken; this beat sends the periodic tasks")
            else:
                log.warning("another beat holds the beat lock; standing by")
            self._holding = held
        return held

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self._hold():
            return LOCK_SECONDS / 4
        interval: float = super().tick(*args, **kwargs)
        return min(interval, LOCK_SECONDS / 3)

    def close(self) -> None:
        """Let a standing-by beat take over at once instead of after LOCK_SECONDS."""
        with contextlib.suppress(redis.RedisError):  # unreachable: it expires by itself
            self._redis.eval(_RELEASE, 1, self._key, self._token)
        self._redis.close()
        super().close()
