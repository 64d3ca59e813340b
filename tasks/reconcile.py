"""Is an SMS whose answer was lost already at Twilio? The matching rules, pure (no I/O).

Twilio's Messages API takes no idempotency key, and a Message resource echoes nothing we
could tag it with (its fields in the 2010-04-01 description: body, to, from,
messaging_service_sid, dates, status, price...; StatusCallback is not among them). So a
send whose answer was lost is found again by what it was: the recipient, the sender, the
body and when it was sent. What the API guarantees, and what it does not, shapes the walk:

- The list lags: messages sent minutes ago can be missing (twilio-node#647,
  twilio-java#442). A lookup runs only NOTIFY_RECONCILE_WAIT_SECONDS after the unanswered
  send (`remaining_wait`); earlier it is deferred (`TooEarly`), never answered "not there".
- The list is asked for `To` and `From` with no `DateSent` filter: that filter compares
  whole GMT dates, and a message Twilio still holds `queued` has no `date_sent` at all.
- It is sorted by `DateSent`, newest first; where queued messages (no `date_sent`) go is
  undocumented. So only a `date_sent` older than the earliest unanswered send (minus
  `CLOCK_SKEW`) ends the walk: everything after it was sent earlier still. A queued
  message never ends it, however old it was created.
- Bodies are compared after `normalise`: Smart Encoding replaces Unicode look-alikes
  (curly quotes, dashes) and link shortening rewrites URLs in what Twilio stores.
- At most `MAX_SCANNED` messages (`MAX_SCANNED / PAGE_SIZE` pages) are read. A walk that
  reaches the bound without getting past the window proves nothing: `Inconclusive`.
- A matching message that another notification already holds (its SID recorded on that
  row) is not ours: two notifications with the same text to the same number are routine.

What no walk can rule out (docs/delivery-guarantees.md, with numbers): a message still
queued at lookup time if Twilio lists queued messages after sent ones, and a list that
lags longer than the wait.
"""

from __future__ import annotations

import re
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


class TooEarly(LookupFailed):
    """The list may not show the send yet: ask again after `wait` seconds."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"Twilio's list may lag the send: looking in {wait:.0f} s")
        self.wait = wait


def remaining_wait(since: datetime, now: datetime, wait_seconds: float) -> float:
    """Seconds until a lookup for a send begun at `since` may trust the list."""
    return max(0.0, wait_seconds - (now - since).total_seconds())


# Smart Encoding's common replacements (Twilio's table is longer; these are what templates
# and people type): curly quotes, primes, dashes, the ellipsis, odd spaces.
_LOOK_ALIKES = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
        "\u2015": "-", "\u2026": "...", "\u00a0": " ", "\u2002": " ", "\u2003": " ",
        "\u2009": " ", "\u200b": "",
    }
)  # fmt: skip
_LINK = re.compile(r"https?://\S+")
_SPACE = re.compile(r"\s+")


def normalise(body: str) -> str:
    """A body as it survives Twilio's rewriting: look-alikes replaced, links as one token
    (link shortening swaps them), runs of whitespace as one space."""
    text = _LINK.sub("<link>", body.translate(_LOOK_ALIKES))
    return _SPACE.sub(" ", text).strip()


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
    wanted = normalise(body)
    found: list[Listed] = []
    for scanned, message in enumerate(listed):
        if scanned >= limit:
            return found, False
        if message.date_sent is not None and message.date_sent < floor:
            return found, True  # everything after this one was sent earlier still
        if sender in (message.from_, message.messaging_service_sid) and (
            message.body is not None and normalise(message.body) == wanted
        ):
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
