"""Is an SMS whose answer was lost already at Twilio? The matching rules, pure (no I/O).

Twilio's Messages API takes no idempotency key (in the 2010-04-01 description only call
Payments and user-defined messages do), and a message's resource does not echo anything we
could tag it with except its body, which customers read. So a send whose answer was lost is
found again by what it was: the recipient, the sender, the body and when it was created.

- The list is asked for `To` and `From` with no `DateSent` filter: that filter compares
  whole GMT dates, and a message Twilio still holds `queued` has no `date_sent` at all.
- It is walked newest first and stops at the first message older than the earliest
  unanswered send (minus `CLOCK_SKEW`, for the two clocks and Twilio's whole seconds); the
  stop key is `date_sent`, else `date_created`, which is right whether Twilio orders by
  creation or by sending time (its documentation says by `DateSent`, newest first), as
  long as a message not yet sent is not listed after older sent ones.
- At most `MAX_SCANNED` messages (`MAX_SCANNED / PAGE_SIZE` pages) are read. A walk that
  reaches the bound without getting past the window proves nothing: `Inconclusive`.
- A matching message that another notification already holds (its SID recorded on that
  row) is not ours: two notifications with the same text to the same number are routine
  (a reminder with no shipment id in it).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas import NotifyError

CLOCK_SKEW = timedelta(seconds=60)
PAGE_SIZE = 50
MAX_SCANNED = 200


class LookupFailed(NotifyError):
    """Twilio could not tell us whether it has the message: do not send, ask again later."""


class Inconclusive(LookupFailed):
    """More messages to this number since the send than one lookup reads."""


@dataclass(frozen=True, slots=True)
class Listed:
    """One message from Twilio's list, as far as matching needs it."""

    sid: str
    body: str | None
    date_created: datetime | None
    date_sent: datetime | None = None
    from_: str | None = None
    messaging_service_sid: str | None = None


def candidates(
    listed: Iterable[Listed],
    *,
    body: str,
    sender: str,
    since: datetime,
    limit: int = MAX_SCANNED,
) -> tuple[list[Listed], bool]:
    """Messages that could be the lost send, and whether the walk got past the window.

    `listed` is Twilio's list, newest first, read lazily: the walk stops as soon as it can.
    """
    floor = since - CLOCK_SKEW
    found: list[Listed] = []
    for scanned, message in enumerate(listed):
        if scanned >= limit:
            return found, False
        seen_at = message.date_sent or message.date_created
        if seen_at is not None and seen_at < floor:
            return found, True  # everything after this one is older still
        if message.body == body and sender in (message.from_, message.messaging_service_sid):
            found.append(message)
    return found, True


def choose(found: list[Listed], complete: bool, taken: Collection[str]) -> str | None:
    """The SID of the lost send, None if Twilio does not have it; Inconclusive if unsure.

    Of several matches not held by another notification, the earliest created is taken: a
    later one would be a second copy.
    """
    free = [m for m in found if m.sid not in taken]
    if free:
        oldest = min(free, key=lambda m: (m.date_created is None, m.date_created or datetime.min))
        return oldest.sid
    if not complete:
        raise Inconclusive(f"more than {MAX_SCANNED} messages to this number in the window")
    return None
