"""Opted-out numbers: Twilio refuses to send them SMS (error 21610) until they opt back in.

Twilio's standard opt-out keywords decide it: an incoming message whose whole body, trimmed
and case-folded, is a STOP keyword opts its sender out; a START keyword opts them back in.
"please stop at the back door" is not a keyword. Advanced Opt-Out also tells the
application which kind of keyword it saw (OptOutType STOP, START or HELP).

Real Twilio keeps opt-outs per sender number or Messaging Service; the emulator keeps one
set for the whole account, which is what a single-sender application sees.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

STOP_KEYWORDS = frozenset(
    {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "revoke"}
)
START_KEYWORDS = frozenset({"start", "unstop", "yes"})
HELP_KEYWORDS = frozenset({"help", "info"})
OPT_OUT_TYPES = ("STOP", "START", "HELP")


def keyword_type(body: str) -> str | None:
    """STOP, START or HELP when the whole body is such a keyword; else None."""
    word = body.strip().casefold()
    if word in STOP_KEYWORDS:
        return "STOP"
    if word in START_KEYWORDS:
        return "START"
    if word in HELP_KEYWORDS:
        return "HELP"
    return None


class OptOuts:
    def __init__(self, numbers: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._initial = frozenset(numbers)
        self._numbers = set(self._initial)

    def add(self, number: str) -> None:
        with self._lock:
            self._numbers.add(number)

    def remove(self, number: str) -> None:
        with self._lock:
            self._numbers.discard(number)

    def __contains__(self, number: object) -> bool:
        with self._lock:
            return number in self._numbers

    def numbers(self) -> list[str]:
        with self._lock:
            return sorted(self._numbers)

    def apply(self, number: str, opt_out_type: str | None) -> None:
        """What an incoming message of this kind does to its sender's opt-out."""
        if opt_out_type == "STOP":
            self.add(number)
        elif opt_out_type == "START":
            self.remove(number)

    def reset(self) -> None:
        """Back to the numbers given at construction."""
        with self._lock:
            self._numbers = set(self._initial)
