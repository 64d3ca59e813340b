"""Group hygiene (CONTRACT section 10): a live consumer removes the group's consumers that
hold no pending entries and have been idle longer than NOTIFY_CONSUMER_REAP_SECONDS.

Every start with a generated name adds a consumer to the group, and Redis never removes
one. A consumer holding pending entries is never removed: XGROUP DELCONSUMER would drop its
PEL, and those entries would never be claimed. The decision is made on one XINFO CONSUMERS
reading; each removal re-checks it atomically (a script), because a consumer with a stable
name may have come back and read entries since.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from consumer import metrics
from notify import logs
from notify.redis_clients import AsyncRedis

log = logs.get("consumer")

# Removes ARGV[2] from group ARGV[1] only if it still has no pending entries and is still
# idle for at least ARGV[3] ms. Returns the pending count DELCONSUMER reports (0), or -1.
_DELETE_IF_IDLE = """
local members = redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
for _, member in ipairs(members) do
  local f = {}
  for i = 1, #member, 2 do f[member[i]] = member[i + 1] end
  if f['name'] == ARGV[2] then
    if tonumber(f['pending']) == 0 and tonumber(f['idle']) >= tonumber(ARGV[3]) then
      return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
    end
    return -1
  end
end
return -1
"""


@dataclass(frozen=True, slots=True)
class Member:
    """One consumer of the group, as XINFO CONSUMERS reports it."""

    name: str
    pending: int
    idle_ms: int


def reapable(members: Iterable[Member], *, own: str, idle_ms: int) -> list[str]:
    """The members to remove: not this one, nothing pending, idle at least `idle_ms`."""
    return [m.name for m in members if m.name != own and m.pending == 0 and m.idle_ms >= idle_ms]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def members(client: AsyncRedis, stream: str, group: str) -> list[Member]:
    reply: Any = await client.xinfo_consumers(stream, group)
    return [Member(_text(c["name"]), int(c["pending"]), int(c["idle"])) for c in reply]


async def remove_if_idle(
    client: AsyncRedis, stream: str, group: str, name: str, idle_ms: int
) -> bool:
    """Remove `name` only if it still holds nothing and is still idle (one atomic script)."""
    result: Any = await client.eval(_DELETE_IF_IDLE, 1, stream, group, name, idle_ms)
    return int(result) >= 0


async def reap(
    client: AsyncRedis, stream: str, group: str, *, own: str, idle_seconds: float
) -> list[str]:
    """Remove the group's stale consumers; returns the names removed."""
    idle_ms = int(idle_seconds * 1000)
    decided = reapable(await members(client, stream, group), own=own, idle_ms=idle_ms)
    return [name for name in decided if await remove_if_idle(client, stream, group, name, idle_ms)]


async def tidy(
    client: AsyncRedis, stream: str, group: str, *, own: str, idle_seconds: float
) -> None:
    """`reap`, counted and logged; a failure waits for the next turn: it stops nothing."""
    try:
        removed = await reap(client, stream, group, own=own, idle_seconds=idle_seconds)
    except RedisError as exc:
        log.warning("could not reap idle consumers", extra=logs.fields(error=str(exc)))
        return
    if removed:
        metrics.CONSUMERS_REAPED.inc(len(removed))
        log.info("removed idle consumers", extra=logs.fields(consumers=removed))
