"""Fault-injection state: latency, queued errors and sticky recipients.

The JSON form accepted by `Script.apply` (and POST /_sandbox/script)::

    {
      "latency_ms": 50,                         # all channels
      "channel_latency_ms": {"sms": 200},       # overrides per channel
      "queue": {"sms": [{"status": 429, "code": 20429, "retry_after": 1},
                        {"action": "drop"}]},   # connection faults: sandbox.control.faults
      "storm": {"push": {"count": 5, "error": {"status": 503}}},
      "fail_recipients": {"<registration token>": {"error_code": "UNREGISTERED"},
                          "+14155550123": {"action": "timeout", "delay_s": 20},
                          "+15005550009": null},  # null removes the rule
      "fail_sms_reads": {"code": 20429, "retry_after": 1},  # null ends it
      "token_faults": [{"status": 503}, {"action": "timeout", "delay_s": 5},
                       {"status": 400, "error_code": "invalid_grant"}]
    }

Queued faults (storms are just repeated queue entries) are consumed one
per request of that channel and come first; then the request's own checks
(an invalid number, a malformed token); then sticky recipients. These apply to
what a request asks of the provider: an SMS created, a push sent.

Reads (Twilio's GET of a Message or of the Messages list) have their own fault,
`fail_sms_reads`: every read gets it until it is cleared, so a rate limit on lookups can
last while sends go through, and no send uses up a fault meant for a lookup.

Twilio behaviours that are not errors, switchable per test: `"sms_list": {"lag_s": 120,
"queued": "last"}` (the Messages list hides messages younger than `lag_s`, and lists
messages with no `date_sent` first or last among the others, newest `date_sent` first) and
`"smart_encoding": true` (stored bodies have Unicode look-alikes replaced, as a Messaging
Service with Smart Encoding does; sandbox.twilio.rewriting).

Google's token endpoint has its own queue, `token_faults`, one consumed per token request
(google-auth asks up to three times per refresh on a 5xx): a 5xx is the front end's HTML
error page, a 4xx with an `error_code` is the OAuth error JSON (`invalid_grant`), and a
connection action applies as for sends.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from sandbox.control.faults import CHANNELS, Channel, Fault, FaultSpec, as_channel, as_fault

_KEYS = frozenset(
    {
        "latency_ms", "channel_latency_ms", "queue", "storm", "fail_recipients",
        "fail_sms_reads", "token_faults", "sms_list", "smart_encoding",
    }
)  # fmt: skip


class Script:
    def __init__(self, latency_ms: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._default_latency_ms = float(latency_ms)
        self._latency_ms = float(latency_ms)
        self._channel_latency_ms: dict[Channel, float] = {}
        self._queues: dict[Channel, deque[Fault]] = {c: deque() for c in CHANNELS}
        self._sticky: dict[str, Fault] = {}
        self._sms_reads: Fault | None = None
        self._token_faults: deque[Fault] = deque()
        self._list_lag_s = 0.0
        self._queued_last = False
        self._smart_encoding = False

    def set_latency(self, ms: float, channel: Channel | None = None) -> None:
        if ms < 0:
            raise ValueError("latency must be >= 0")
        with self._lock:
            if channel is None:
                self._latency_ms = float(ms)
            else:
                self._channel_latency_ms[as_channel(channel)] = float(ms)

    def queue_errors(self, channel: Channel, errors: Iterable[FaultSpec]) -> None:
        faults = [as_fault(e) for e in errors]
        with self._lock:
            self._queues[as_channel(channel)].extend(faults)

    def storm(self, channel: Channel, count: int, error: FaultSpec) -> None:
        if count < 0:
            raise ValueError("storm count must be >= 0")
        self.queue_errors(channel, [as_fault(error)] * count)

    def fail_recipient(self, recipient: str, error: FaultSpec | None) -> None:
        fault = None if error is None else as_fault(error)
        with self._lock:
            if fault is None:
                self._sticky.pop(recipient, None)
            else:
                self._sticky[recipient] = fault

    def fail_sms_reads(self, error: FaultSpec | None) -> None:
        """Answer every Twilio Messages GET (fetch, list) with `error`; None: normally."""
        fault = None if error is None else as_fault(error)
        with self._lock:
            self._sms_reads = fault

    def queue_token_faults(self, faults: Iterable[FaultSpec]) -> None:
        """The next token requests get these, one each, in order."""
        parsed = [as_fault(f) for f in faults]
        with self._lock:
            self._token_faults.extend(parsed)

    def next_token_fault(self) -> Fault | None:
        with self._lock:
            return self._token_faults.popleft() if self._token_faults else None

    def set_sms_list(self, lag_s: float = 0.0, queued: str = "first") -> None:
        if lag_s < 0 or queued not in ("first", "last"):
            raise ValueError("sms_list needs lag_s >= 0 and queued 'first' or 'last'")
        with self._lock:
            self._list_lag_s, self._queued_last = float(lag_s), queued == "last"

    def sms_list(self) -> tuple[float, bool]:
        """(seconds a new message stays unlisted, whether unsent messages list last)."""
        with self._lock:
            return self._list_lag_s, self._queued_last

    def set_smart_encoding(self, on: bool) -> None:
        with self._lock:
            self._smart_encoding = bool(on)

    def smart_encoding(self) -> bool:
        with self._lock:
            return self._smart_encoding

    def apply(self, spec: Mapping[str, Any]) -> None:
        """Apply the JSON script format; validates before changing anything."""
        unknown = set(spec) - _KEYS
        if unknown:
            raise ValueError(f"unknown script keys: {sorted(unknown)}")
        latency = spec.get("latency_ms")
        by_channel = {
            as_channel(c): _ms(v) for c, v in _mapping(spec, "channel_latency_ms").items()
        }
        queues = {
            as_channel(c): [as_fault(f) for f in _list(v)]
            for c, v in _mapping(spec, "queue").items()
        }
        for c, storm in _mapping(spec, "storm").items():
            if not isinstance(storm, Mapping):
                raise TypeError("storm entries must be objects")
            count = storm.get("count", 1)
            if not isinstance(count, int) or count < 0:
                raise ValueError("storm count must be a non-negative integer")
            queues.setdefault(as_channel(c), []).extend(
                [as_fault(_map(storm.get("error")))] * count
            )
        sticky = {
            str(r): None if f is None else as_fault(_map(f))
            for r, f in _mapping(spec, "fail_recipients").items()
        }
        reads = spec.get("fail_sms_reads")
        read_fault = None if reads is None else as_fault(_map(reads))
        token_faults = [as_fault(f) for f in _list(spec.get("token_faults", []))]
        listing, smart = _twilio_behaviours(spec)
        if latency is not None:
            self.set_latency(_ms(latency))
        for channel, ms in by_channel.items():
            self.set_latency(ms, channel)
        for channel, faults in queues.items():
            self.queue_errors(channel, faults)
        for recipient, fault in sticky.items():
            self.fail_recipient(recipient, fault)
        if "fail_sms_reads" in spec:  # present and null clears it; absent leaves it
            self.fail_sms_reads(read_fault)
        self.queue_token_faults(token_faults)
        if "sms_list" in spec:
            self.set_sms_list(_ms(listing.get("lag_s", 0.0)), str(listing.get("queued", "first")))
        if smart is not None:
            self.set_smart_encoding(smart)

    def latency_s(self, channel: Channel) -> float:
        with self._lock:
            ms = self._channel_latency_ms.get(channel, self._latency_ms)
        return ms / 1000.0

    def delay(self, channel: Channel) -> None:
        seconds = self.latency_s(channel)
        if seconds > 0:
            time.sleep(seconds)

    def next_fault(self, channel: Channel, recipient: str | None) -> Fault | None:
        """The error this request must get, consuming a queued one if any."""
        with self._lock:
            queue = self._queues[channel]
            if queue:
                return queue.popleft()
            if recipient is not None:
                return self._sticky.get(recipient)
        return None

    def sticky_fault(self, recipient: str | None) -> Fault | None:
        """The error set for this recipient, without touching the queue."""
        if recipient is None:
            return None
        with self._lock:
            return self._sticky.get(recipient)

    def sms_read_fault(self) -> Fault | None:
        """The fault every Twilio Messages GET gets now, if any (not consumed)."""
        with self._lock:
            return self._sms_reads

    def reset(self) -> None:
        """Back to the constructor's latency, with no faults."""
        with self._lock:
            self._latency_ms = self._default_latency_ms
            self._channel_latency_ms.clear()
            for queue in self._queues.values():
                queue.clear()
            self._sticky.clear()
            self._sms_reads = None
            self._token_faults.clear()
            self._list_lag_s, self._queued_last, self._smart_encoding = 0.0, False, False

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "latency_ms": self._latency_ms,
                "channel_latency_ms": dict(self._channel_latency_ms),
                "queue": {c: [f.to_json() for f in q] for c, q in self._queues.items()},
                "fail_recipients": {r: f.to_json() for r, f in self._sticky.items()},
                "fail_sms_reads": None if self._sms_reads is None else self._sms_reads.to_json(),
                "token_faults": [f.to_json() for f in self._token_faults],
                "sms_list": {
                    "lag_s": self._list_lag_s,
                    "queued": "last" if self._queued_last else "first",
                },
                "smart_encoding": self._smart_encoding,
            }


def _twilio_behaviours(spec: Mapping[str, Any]) -> tuple[Mapping[str, Any], bool | None]:
    listing = _mapping(spec, "sms_list")
    unknown = set(listing) - {"lag_s", "queued"}
    if unknown:
        raise ValueError(f"unknown sms_list keys: {sorted(unknown)}")
    smart = spec.get("smart_encoding")
    if smart is not None and not isinstance(smart, bool):
        raise TypeError("'smart_encoding' must be true or false")
    return listing, smart


def _mapping(spec: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = spec.get(key) or {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{key!r} must be an object")
    return value


def _map(value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError("a fault must be an object")
    return value


def _list(value: object) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        raise TypeError("queue entries must be lists of faults")
    return [_map(v) for v in value]


def _ms(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError("latency must be a non-negative number of milliseconds")
    return float(value)
