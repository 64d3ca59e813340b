"""Quiet hours: when a notification due inside a local-time window may go out. Pure: no I/O.

An instant is quiet in a zone when its local wall-clock time is inside the window. A window
may cross midnight ("21:00-08:00"). Daylight saving is handled by asking, not assuming: a
window end that does not exist on a spring-forward night ends at the jump; one that exists
twice on a fall-back night ends at the first of them that is not in the past.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_zones

# No instant outside the window in every zone within this long: the zones cannot agree.
_SEARCH = timedelta(days=3)
_UNKNOWN_ZONE = "Etc/Unknown"  # what phonenumbers answers for a number it cannot place


@dataclass(frozen=True)
class QuietHours:
    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """'21:00-08:00' -> QuietHours; ValueError if malformed or empty (start == end)."""
        first, sep, second = text.partition("-")
        if not sep:
            raise ValueError(f"quiet hours {text!r} must look like 21:00-08:00")
        start, end = time.fromisoformat(first.strip()), time.fromisoformat(second.strip())
        if start == end:
            raise ValueError(f"quiet hours {text!r} start and end at the same time")
        return cls(start, end)

    def contains(self, wall: time) -> bool:
        if self.start < self.end:
            return self.start <= wall < self.end
        return wall >= self.start or wall < self.end  # crosses midnight

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def is_quiet(at: datetime, zone: ZoneInfo, window: QuietHours) -> bool:
    return window.contains(at.astimezone(zone).time().replace(tzinfo=None))


def _local_to_utc(wall: datetime, zone: ZoneInfo, not_before: datetime) -> datetime:
    """The first instant at or after `not_before` whose local time is `wall`, or the jump
    over it when a spring-forward gap swallows that wall time."""
    readings = {wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)}
    real = sorted(u for u in readings if u.astimezone(zone).replace(tzinfo=None) == wall)
    if not real:
        return _jump(min(readings), max(readings), zone)
    later = [u for u in real if u >= not_before]
    return later[0] if later else real[-1]


def _jump(lo: datetime, hi: datetime, zone: ZoneInfo) -> datetime:
    """The instant in (lo, hi] where the zone's offset changes (a spring-forward jump)."""
    before = lo.astimezone(zone).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(zone).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return hi.replace(microsecond=0)


def window_end(at: datetime, zone: ZoneInfo, window: QuietHours) -> datetime:
    """When the window that `at` is in ends, in that zone. `at` must be quiet there."""
    local = at.astimezone(zone).replace(tzinfo=None)
    day = local.date()
    if window.start > window.end and local.time() >= window.start:
        day += timedelta(days=1)  # evening part of a window that ends tomorrow morning
    return max(at, _local_to_utc(datetime.combine(day, window.end), zone, at))


@dataclass(frozen=True)
class Held:
    """A notification moved to the end of quiet hours, and the zone that decided it."""

    until: datetime
    zone: str


def first_open(
    due: datetime, zones: list[str], window: QuietHours
) -> tuple[datetime, str | None] | None:
    """The first instant at or after `due` outside the window in every zone, with the zone
    that held it longest (None if `due` itself is open); None when the zones are so far
    apart that no instant within a few days is open in all of them."""
    infos = [(z, ZoneInfo(z)) for z in zones]
    at, deciding = due, None
    while at <= due + _SEARCH:
        quiet = [(z, info) for z, info in infos if is_quiet(at, info, window)]
        if not quiet:
            return at, deciding
        moved = at
        for name, info in quiet:
            end = window_end(moved, info, window)
            if end > moved:
                moved, deciding = end, name
        # Defensive: never spin in place, whatever the zone data says.
        at = moved if moved > at else at + timedelta(minutes=1)
    return None


@lru_cache(maxsize=4096)
def zones_for_number(e164: str) -> tuple[str, ...]:
    """The IANA zones phonenumbers places a number in; () when it cannot tell."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ()
    zones = number_zones.time_zones_for_number(number)
    return tuple(z for z in zones if z != _UNKNOWN_ZONE and _known(z))


def _known(zone: str) -> bool:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def hold(
    due: datetime, window: QuietHours, zones: list[str] | tuple[str, ...], default: str
) -> Held | None:
    """Where a notification due at `due` must wait: until the window is over in all of
    `zones`, or in the default zone when there are none or they never agree (a number placed
    in every zone of its country); None when it may go at `due`."""
    found = first_open(due, list(zones), window) if zones else None
    if found is None:
        found = first_open(due, [default], window)
    if found is None:  # one zone always has open hours; kept for the type checker
        return None
    at, zone = found
    return None if zone is None else Held(at, zone)
