"""Thread-safe log of accepted messages and of every provider request."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class RecordedMessage:
    """A message the emulator accepted (an SMS or a push): what a phone "received".

    An SMS is recorded when Twilio would have created it, whatever happens next; `status`
    and `response` then follow its lifecycle (queued, sending, sent, delivered...), so
    `response` is the resource a fetch returns now. Pushes have no status (None).
    """

    channel: str
    id: str  # Twilio sid or FCM message name
    to: str  # phone number or device token
    sender: str | None  # From / MessagingServiceSid; None for push
    body: str | None
    title: str | None = None
    data: dict[str, str] = field(default_factory=dict)
    payload: dict[str, Any] = field(default_factory=dict)  # form / FCM message sent
    response: dict[str, Any] = field(default_factory=dict)  # JSON returned for it
    received_at: float = field(default_factory=time.time)
    status: str | None = None  # an SMS's current Twilio status

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RecordedMessage:
        return cls(**raw)


@dataclass(frozen=True)
class RequestRecord:
    """One provider request and the status it got, accepted or not."""

    channel: str  # "sms", "push" or "oauth"
    method: str
    path: str
    status: int
    recipient: str | None = None
    error: str | None = None  # Twilio code or FCM errorCode/status
    received_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RequestRecord:
        return cls(**raw)


Listener = Callable[[RecordedMessage], None]


class Recorder:
    """Collects records; `wait_for` lets tests block without sleeping."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._messages: list[RecordedMessage] = []
        self._index: dict[str, int] = {}  # message id -> position in _messages
        self._requests: list[RequestRecord] = []
        self._listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> None:
        with self._cond:
            self._listeners.append(listener)

    def record(self, message: RecordedMessage) -> None:
        with self._cond:
            self._index[message.id] = len(self._messages)
            self._messages.append(message)
            listeners = list(self._listeners)
            self._cond.notify_all()
        # Outside the lock so a slow listener (stdout) doesn't serialise requests.
        for listener in listeners:
            listener(message)

    def log(self, request: RequestRecord) -> None:
        with self._cond:
            self._requests.append(request)

    def messages(self, channel: str | None = None) -> list[RecordedMessage]:
        with self._cond:
            return _only(self._messages, channel)

    def requests(self, channel: str | None = None) -> list[RequestRecord]:
        with self._cond:
            return [r for r in self._requests if channel in (None, r.channel)]

    def find(self, message_id: str) -> RecordedMessage | None:
        with self._cond:
            position = self._index.get(message_id)
            return None if position is None else self._messages[position]

    def update(
        self, message_id: str, change: Callable[[RecordedMessage], RecordedMessage]
    ) -> RecordedMessage | None:
        """Replace a message with `change(message)`; None if it is gone (reset)."""
        with self._cond:
            position = self._index.get(message_id)
            if position is None:
                return None
            updated = change(self._messages[position])
            self._messages[position] = updated
            self._cond.notify_all()
            return updated

    def wait_for_message(
        self, message_id: str, predicate: Callable[[RecordedMessage], bool], timeout: float
    ) -> RecordedMessage:
        """Block until message `message_id` exists and satisfies `predicate`."""

        def met() -> bool:
            position = self._index.get(message_id)
            return position is not None and predicate(self._messages[position])

        with self._cond:
            if not self._cond.wait_for(met, timeout):
                found = self.find(message_id)
                state = "unknown" if found is None else f"{found.status}"
                raise TimeoutError(f"{message_id} ({state}) did not get there in {timeout}s")
            return self._messages[self._index[message_id]]

    def wait_for(
        self, count: int, timeout: float, channel: str | None = None
    ) -> list[RecordedMessage]:
        """Block until `count` messages exist; raise TimeoutError otherwise."""
        with self._cond:
            done = self._cond.wait_for(
                lambda: len(_only(self._messages, channel)) >= count, timeout
            )
            found = _only(self._messages, channel)
        if not done:
            raise TimeoutError(
                f"expected {count} {channel or 'any'} message(s) within "
                f"{timeout}s, got {len(found)}"
            )
        return found

    def reset(self) -> None:
        with self._cond:
            self._messages.clear()
            self._index.clear()
            self._requests.clear()
            self._cond.notify_all()


def _only(messages: list[RecordedMessage], channel: str | None) -> list[RecordedMessage]:
    if channel is None:
        return list(messages)
    return [m for m in messages if m.channel == channel]
