"""The pumping breaker: SMS segments sent per country in the last hour, shared by every worker.

One Redis hash per country (`notify:sms-country:{CC}`): a field per minute with the
segments admitted in it, and `resumed_until` after `notify sms resume`. Every decision is
one Lua script on that one key, so it is atomic across all workers and works the same on a
Redis Cluster (a single-key script is always in one slot). The workers ask it after the
claim and before the provider call; the CLI lifts a pause with it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from notify.redis_clients import SyncRedis

COUNTRY_PAUSED = "country_paused"
WINDOW_MINUTES = 60
_KEEP_SECONDS = 2 * 3600

# KEYS[1]: the country's hash. ARGV: now (epoch s), the limit, the window in minutes, how
# long the key outlives its last change (s), then each message's segments.
# Returns 1/0 per message: admitted, or held back (the last hour's total had reached the
# limit, and no resume is in force). A message below the limit is admitted whole, so the
# total may pass the limit by one message's segments.
_ADMIT = """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local minute = math.floor(now / 60)
local total, resumed = 0, 0
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if fields[i] == 'resumed_until' then
    resumed = tonumber(fields[i + 1])
  elseif tonumber(fields[i]) <= minute - window then
    redis.call('HDEL', KEYS[1], fields[i])
  else
    total = total + tonumber(fields[i + 1])
  end
end
local admitted, added = {}, 0
for i = 5, #ARGV do
  if total < limit or resumed > now then
    local segments = tonumber(ARGV[i])
    total = total + segments
    added = added + segments
    admitted[#admitted + 1] = 1
  else
    admitted[#admitted + 1] = 0
  end
end
if added > 0 then
  redis.call('HINCRBY', KEYS[1], tostring(minute), added)
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return admitted
"""


def key(country: str) -> str:
    return f"notify:sms-country:{country}"


def end_of_hour(now: float) -> float:
    """`notify sms resume` lifts the pause for the rest of the clock hour it runs in."""
    return (now // 3600 + 1) * 3600


@dataclass(frozen=True)
class CountryCount:
    country: str
    segments: int  # in the last hour
    resumed_until: float | None


class CountryBreaker:
    """NOTIFY_SMS_COUNTRY_HOURLY_SEGMENTS over one Redis (or a Redis Cluster node's client)."""

    def __init__(self, client: SyncRedis, limit: int) -> None:
        self.client = client
        self.limit = limit
        self._admit = client.register_script(_ADMIT)

    def admit(self, country: str, segments: Sequence[int], now: float | None = None) -> list[bool]:
        """For each message to `country`, in order: may it be sent?"""
        if not segments:
            return []
        at = time.time() if now is None else now
        answer = self._admit(
            keys=[key(country)], args=[at, self.limit, WINDOW_MINUTES, _KEEP_SECONDS, *segments]
        )
        return [bool(a) for a in answer]

    def resume(self, country: str, now: float | None = None) -> float:
        """Lift the country's pause until the end of this hour; returns when that is."""
        until = end_of_hour(time.time() if now is None else now)
        self.client.hset(key(country), "resumed_until", str(until))
        self.client.expire(key(country), _KEEP_SECONDS)
        return until

    def count(self, country: str, now: float | None = None) -> CountryCount:
        """The country's segments in the last hour, and any resume in force."""
        at = time.time() if now is None else now
        minute = int(at // 60)
        fields = {_text(k): _text(v) for k, v in self.client.hgetall(key(country)).items()}
        resumed = float(fields.pop("resumed_until", 0)) or None
        total = sum(int(v) for k, v in fields.items() if int(k) > minute - WINDOW_MINUTES)
        return CountryCount(country, total, resumed if resumed and resumed > at else None)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
