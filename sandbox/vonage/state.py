"""What the Vonage emulator holds: accepted messages, requests, scripted faults and modes."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

ACTIONS = ("drop", "timeout", "reset")


@dataclass(frozen=True)
class Fault:
    """A problem answer (`problem` by name, or a `status`), or a connection `action`:
    `drop` (accepted, then closed unanswered), `timeout` (accepted, answered `delay_s`
    late), `reset` (nothing accepted, RST)."""

    status: int = 0
    problem: str | None = None
    retry_after: int | None = None
    action: str | None = None
    delay_s: float | None = None

    @classmethod
    def of(cls, spec: Mapping[str, Any] | Fault) -> Fault:
        if isinstance(spec, Fault):
            return spec
        fault = cls(**dict(spec))
        if fault.action is not None and fault.action not in ACTIONS:
            raise ValueError(f"unknown action {fault.action!r}")
        if fault.action is None and not (fault.problem or fault.status):
            raise ValueError("a fault needs a problem, a status or an action")
        if fault.action == "timeout" and fault.delay_s is None:
            return replace(fault, delay_s=30.0)
        return fault


@dataclass
class VonageMessage:
    """An accepted SMS: what the phone "received"; `statuses` are the webhooks it caused."""

    uuid: str
    to: str
    from_: str
    text: str
    webhook_url: str | None
    client_ref: str | None
    received_at: float
    statuses: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RequestLog:
    path: str
    status: int  # 0: a connection fault, no answer
    to: str | None
    error: str | None
    at: float


class VonageState:
    def __init__(
        self,
        *,
        signature_secret: str,
        api_key: str,
        application_id: str | None,
        public_key: str | None,
        status_url: str | None,
        delivery_delay_s: float,
        latency_ms: float,
        requests_per_second: float | None,
    ) -> None:
        self.signature_secret = signature_secret
        self.api_key = api_key
        self.application_id = application_id
        self.public_key = public_key
        self.status_url = status_url
        self._defaults = (delivery_delay_s, latency_ms, requests_per_second)
        self._cond = threading.Condition()
        self.on_accept: Callable[[VonageMessage], None] | None = None
        self.reset()

    def reset(self) -> None:
        with self._cond:
            self.delivery_delay_s, self.latency_ms, self.requests_per_second = self._defaults
            self.messages: list[VonageMessage] = []
            self.requests: list[RequestLog] = []
            self.faults: deque[Fault] = deque()
            self.failing: Fault | None = None
            self.outcomes: dict[str, tuple[str, str]] = {}
            self.duplicate_callbacks = False
            self.reverse_callbacks = False
            self._window: deque[float] = deque()
            self._cond.notify_all()

    # --- the request path ---

    def pause(self) -> None:
        if self.latency_ms > 0:
            time.sleep(self.latency_ms / 1000)

    def next_fault(self) -> Fault | None:
        with self._cond:
            return self.faults.popleft() if self.faults else self.failing

    def admit(self) -> bool:
        """The account's throughput limit: requests per second over a sliding second."""
        if self.requests_per_second is None:
            return True
        now = time.monotonic()
        with self._cond:
            while self._window and now - self._window[0] >= 1.0:
                self._window.popleft()
            if len(self._window) >= self.requests_per_second:
                return False
            self._window.append(now)
            return True

    def accept(self, message: VonageMessage) -> None:
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()
        if self.on_accept is not None:
            self.on_accept(message)

    def log(self, path: str, status: int, to: str | None, error: str | None) -> None:
        with self._cond:
            self.requests.append(RequestLog(path, status, to, error, time.time()))

    # --- steering and reading ---

    def queue(self, faults: Iterable[Mapping[str, Any] | Fault]) -> None:
        with self._cond:
            self.faults.extend(Fault.of(f) for f in faults)

    def outcome(self, to: str) -> tuple[str, str] | None:
        with self._cond:
            return self.outcomes.get(to)

    def wait_for(self, count: int, timeout: float) -> list[VonageMessage]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.messages) >= count, timeout):
                raise TimeoutError(f"expected {count} Vonage SMS, got {len(self.messages)}")
            return list(self.messages)

    def snapshot(self) -> list[VonageMessage]:
        with self._cond:
            return list(self.messages)
