"""Per-sender send rate, shared by every worker process on every host through Redis.

GCRA as a schedule: Redis keeps one number per sender, the time its next segment may go
(the "theoretical arrival time"). One script call reserves a slot for each message of a
batch and moves that time on by the message's segments; it answers how long each message
must wait for its slot. One round trip per call, atomic, on Redis's own clock, so hosts
whose clocks disagree still share one schedule. A slot is a promise: the message is sent at
it without asking again, so a waiting message costs no further round trips.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from notify.redis_clients import SyncRedis
from notify.segments import count
from tasks import metrics

# KEYS[1]: the sender's schedule. ARGV[1]: microseconds per segment; ARGV[2..]: each
# message's segments. Returns each message's wait for its slot, in microseconds.
_RESERVE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local per_segment = tonumber(ARGV[1])
local next_free = tonumber(redis.call('GET', KEYS[1]) or '0')
if next_free < now then next_free = now end
local waits = {}
for i = 2, #ARGV do
  waits[i - 1] = next_free - now
  next_free = next_free + tonumber(ARGV[i]) * per_segment
end
local idle_ms = math.floor((next_free - now) / 1000) + 1000
redis.call('SET', KEYS[1], string.format('%.0f', next_free), 'PX', idle_ms)
return waits
"""


def cost(body: str) -> int:
    """Segments a message is charged: what the carrier bills (an empty body is still one)."""
    return max(1, count(body).segments)


class SendRate:
    """The schedule of one sender (a phone number or a Messaging Service)."""

    def __init__(
        self,
        client: SyncRedis,
        sender: str,
        segments_per_second: float,
        provider: str = "twilio",
    ) -> None:
        self.client = client
        self.sender = sender
        self.provider = provider
        self.segments_per_second = segments_per_second
        # One schedule per provider and sender. Twilio's key is the one it had before there
        # were two providers, so workers of both versions share it during an upgrade.
        scope = sender if provider == "twilio" else f"{provider}:{sender}"
        self.key = f"notify:send-rate:{scope}"
        self._per_segment_us = round(1_000_000 / segments_per_second)
        self._script = client.register_script(_RESERVE)
        self._lock = threading.Lock()
        self.round_trips = 0

    def reserve(self, bodies: Sequence[str]) -> list[float]:
        """Reserve a slot for each body, in order; seconds until each may be sent."""
        if not bodies:
            return []
        costs = [cost(b) for b in bodies]
        waits = self._script(keys=[self.key], args=[self._per_segment_us, *costs])
        with self._lock:
            self.round_trips += 1
        metrics.LIMITER_CALLS.labels(self.sender).inc()
        seconds = [int(w) / 1_000_000 for w in waits]
        for wait in seconds:
            metrics.SLOT_WAIT.labels(self.sender).observe(wait)
        return seconds


def from_settings(
    client: SyncRedis, sender: str | None, rate: float | None, provider: str = "twilio"
) -> SendRate | None:
    if not sender or not rate:
        return None
    return SendRate(client, sender, rate, provider)
