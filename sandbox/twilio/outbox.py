"""Twilio's outbound queue: each sender drains at its own rate; then the carrier answers.

A created SMS waits `queued` for its sender's next slot (a sender is the From number, or
the Messaging Service when there is no From). At `rate` messages per second the first goes
at once and the rest one every 1/rate s; `None` means no limit; `0` holds every message
`queued` until released (or until the rate is raised: held messages then drain at the new
rate). In its slot a message goes `sending` then `sent` (date_sent set), and
`delivery_delay_s` later reaches its outcome: `delivered`, or what was set for its
recipient (`undelivered`/`failed` with an error code; `failed` happens instead of `sent`).
A sent message gets its `price` `price_delay_s` after `sent` (0: as it is sent), as Twilio
prices a message when the carrier bills it, often hours later, with no callback.
Messages already given a slot keep it when the rate changes.

A message still waiting fails after `max_queue_s` (Twilio queues up to four hours: 30001,
queue overflow) or its own `ValidityPeriod` if shorter (30036), with a `failed` callback
long after `queued`. Through a Messaging Service, a number that opted out is accepted and
then fails 21610 in its turn (a From number gets the 400 at create instead).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from sandbox.server.records import RecordedMessage, Recorder
from sandbox.server.timeline import Timeline
from sandbox.twilio.lifecycle import OUTCOME_CODES, TransitionError, advance, priced

StatusListener = Callable[[RecordedMessage], None]
# Twilio's documented queue limit: a message not sent within four hours fails 30001.
MAX_QUEUE_S = 4 * 3600.0


@dataclass(frozen=True)
class CarrierAnswer:
    status: str  # delivered | undelivered | failed
    error_code: int | None = None

    @classmethod
    def of(cls, status: str, error_code: int | None = None) -> CarrierAnswer:
        if status not in OUTCOME_CODES:
            raise ValueError(f"outcome must be one of {sorted(OUTCOME_CODES)}, got {status!r}")
        if status == "delivered" and error_code is not None:
            raise ValueError("a delivered message has no error code")
        return cls(status, error_code if error_code is not None else OUTCOME_CODES[status])


DELIVERED = CarrierAnswer("delivered")


class Outbox:
    def __init__(
        self,
        recorder: Recorder,
        *,
        rate: float | None = None,
        delivery_delay_s: float = 0.0,
        opted_out: Callable[[str], bool] = lambda _: False,
        price_delay_s: float = 0.0,
    ) -> None:
        _check_rate(rate)
        _check_delay(delivery_delay_s)
        _check_delay(price_delay_s)
        self._recorder = recorder
        self._opted_out = opted_out
        self._max_queue_s = MAX_QUEUE_S
        self._timeline = Timeline()
        self._lock = threading.Lock()
        self._defaults = (rate, delivery_delay_s, price_delay_s)
        self._rate = rate
        self._delivery_delay_s = delivery_delay_s
        self._price_delay_s = price_delay_s
        self._sender_rates: dict[str, float | None] = {}
        self._next_slot: dict[str, float] = {}
        self._held: dict[str, deque[str]] = {}
        self._outcomes: dict[str, CarrierAnswer] = {}
        self._listeners: list[StatusListener] = []

    def add_listener(self, listener: StatusListener) -> None:
        """Called after each status change of an SMS, on whichever thread made it."""
        self._listeners.append(listener)

    def submit(self, message: RecordedMessage) -> None:
        """Queue a just-recorded SMS behind its sender's earlier ones.

        A message whose slot is now is sent on the caller's thread: at the default (no
        limit) every message is, which spares a thread hand-off per message.
        """
        now = time.monotonic()
        with self._lock:
            due = self._slot(message.sender or "", now)
            if due is None:
                self._held.setdefault(message.sender or "", deque()).append(message.id)
        if due is not None and due <= now:
            self._send(message.id)
            return
        if message.status == "accepted":
            # A Messaging Service picks its sender at once; the message then waits queued.
            self._move(message.id, ["queued"])
        self._schedule_send(message.id, due)
        self._schedule_expiry(message)

    def set_max_queue(self, seconds: float) -> None:
        """How long a message may wait in its sender's queue before it fails 30001."""
        _check_delay(seconds)
        with self._lock:
            self._max_queue_s = seconds

    def _schedule_expiry(self, message: RecordedMessage) -> None:
        """A message still queued when its ValidityPeriod ends fails 30036; one still queued
        after the queue's limit (Twilio: four hours) fails 30001, queue overflow."""
        with self._lock:
            limit = self._max_queue_s
        validity = _validity(message.payload)
        code = 30001
        if validity is not None and validity <= limit:
            limit, code = validity, 30036
        sid = message.id

        def expire() -> None:
            found = self._recorder.find(sid)
            if found is not None and found.status in ("accepted", "queued"):
                self._forget_held(found)
                self._move(sid, ["failed"], code)

        self._timeline.at(time.monotonic() + limit, expire)

    def _forget_held(self, message: RecordedMessage) -> None:
        with self._lock:
            held = self._held.get(message.sender or "")
            if held is not None and message.id in held:
                held.remove(message.id)

    def set_rate(self, rate: float | None, sender: str | None = None) -> None:
        """Messages per second for `sender` (every sender when None); None: no limit."""
        _check_rate(rate)
        now = time.monotonic()
        with self._lock:
            if sender is None:
                self._rate = rate
            else:
                self._sender_rates[sender] = rate
            due = [
                (self._slot(s, now), sid)
                for s in list(self._held)
                if self._rate_for(s) != 0
                for sid in self._held.pop(s)
            ]
        for when, sid in due:
            self._schedule_send(sid, when)

    def release(self, sender: str | None = None, count: int | None = None) -> int:
        """Send held messages now, oldest first per sender; returns how many."""
        if count is not None and count < 0:
            raise ValueError("count must be >= 0")
        released: list[str] = []
        with self._lock:
            for name in [sender] if sender is not None else list(self._held):
                queue = self._held.get(name, deque())
                while queue and (count is None or len(released) < count):
                    released.append(queue.popleft())
                if not queue:
                    self._held.pop(name, None)
        now = time.monotonic()
        for sid in released:
            self._schedule_send(sid, now)
        return len(released)

    def set_delivery_delay(self, seconds: float) -> None:
        _check_delay(seconds)
        with self._lock:
            self._delivery_delay_s = seconds

    def set_price_delay(self, seconds: float) -> None:
        _check_delay(seconds)
        with self._lock:
            self._price_delay_s = seconds

    def set_outcome(
        self, recipient: str, status: str | None, error_code: int | None = None
    ) -> None:
        """How the carrier answers for this number from now on; None: delivered again."""
        outcome = None if status is None else CarrierAnswer.of(status, error_code)
        with self._lock:
            if outcome is None:
                self._outcomes.pop(recipient, None)
            else:
                self._outcomes[recipient] = outcome

    def held(self) -> int:
        with self._lock:
            return sum(len(q) for q in self._held.values())

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "rate": self._rate,
                "sender_rates": dict(self._sender_rates),
                "delivery_delay_s": self._delivery_delay_s,
                "price_delay_s": self._price_delay_s,
                "outcomes": {
                    r: {"status": o.status, "error_code": o.error_code}
                    for r, o in self._outcomes.items()
                },
                "held": {s: len(q) for s, q in self._held.items()},
                "max_queue_s": self._max_queue_s,
            }

    def reset(self) -> None:
        """Forget queued work and settings; back to the constructor's rate and delay."""
        self._timeline.clear()
        with self._lock:
            self._rate, self._delivery_delay_s, self._price_delay_s = self._defaults
            self._sender_rates.clear()
            self._next_slot.clear()
            self._held.clear()
            self._outcomes.clear()
            self._max_queue_s = MAX_QUEUE_S

    def stop(self) -> None:
        self._timeline.stop()

    def _rate_for(self, sender: str) -> float | None:
        return self._sender_rates.get(sender, self._rate)

    def _slot(self, sender: str, now: float) -> float | None:
        """The next send time for `sender` (lock held); None while it is held."""
        rate = self._rate_for(sender)
        if rate is None:
            return now
        if rate == 0:
            return None
        slot = max(now, self._next_slot.get(sender, now))
        self._next_slot[sender] = slot + 1.0 / rate
        return slot

    def _schedule_send(self, sid: str, due: float | None) -> None:
        if due is not None:
            self._timeline.at(due, lambda: self._send(sid))

    def _send(self, sid: str) -> None:
        message = self._recorder.find(sid)
        if message is None:  # reset since
            return
        with self._lock:
            outcome = self._outcomes.get(message.to, DELIVERED)
            delay = self._delivery_delay_s
            price_delay = self._price_delay_s
        if outcome.status != "failed" and price_delay > 0:
            self._timeline.at(time.monotonic() + price_delay, lambda: self._price(sid))
        steps = ["queued", "sending"] if message.status == "accepted" else ["sending"]
        if _via_service(message) and self._opted_out(message.to):
            # A Messaging Service takes the message and reports the opt-out in a callback.
            outcome = CarrierAnswer("failed", 21610)
        if outcome.status == "failed":
            self._move(sid, [*steps, "failed"], outcome.error_code)
        elif delay > 0:
            self._move(sid, [*steps, "sent"])
            self._timeline.at(
                time.monotonic() + delay,
                lambda: self._move(sid, [outcome.status], outcome.error_code),
            )
        else:
            self._move(sid, [*steps, "sent", outcome.status], outcome.error_code)

    def _price(self, sid: str) -> None:
        self._recorder.update(sid, lambda m: replace(m, response=priced(m.response)))

    def _move(self, sid: str, statuses: list[str], error_code: int | None = None) -> None:
        """Take `sid` through `statuses` in one update; listeners see every step."""
        now = time.time()
        steps: list[RecordedMessage] = []
        with self._lock:
            price = self._price_delay_s == 0

        def change(message: RecordedMessage) -> RecordedMessage:
            for status in statuses:
                try:
                    resource = advance(message.response, status, now, error_code, price=price)
                except TransitionError:
                    break  # already moved on (e.g. queued by another path); stop here
                message = replace(message, status=status, response=resource)
                steps.append(message)
            return message

        self._recorder.update(sid, change)
        for step in steps:
            for listener in self._listeners:
                listener(step)


def _via_service(message: RecordedMessage) -> bool:
    payload = message.payload or {}
    return bool(payload.get("MessagingServiceSid")) and not payload.get("From")


def _validity(payload: Mapping[str, Any] | None) -> float | None:
    """ValidityPeriod from the create request (1 to 36,000 s, as Twilio documents)."""
    raw = (payload or {}).get("ValidityPeriod")
    try:
        return float(raw) if raw not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _check_rate(rate: float | None) -> None:
    if rate is not None and not rate >= 0:
        raise ValueError("rate must be >= 0 messages per second, or None for no limit")


def _check_delay(seconds: float) -> None:
    if not seconds >= 0:
        raise ValueError("delivery delay must be >= 0 seconds")
