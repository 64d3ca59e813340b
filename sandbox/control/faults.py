"""Scripted provider errors and the defaults that make them look real.

One `Fault` describes an error for either channel; the SMS side reads
`code` (Twilio error code), the push side reads `fcm_status`/`error_code`.
Missing fields are filled from the pairings the real APIs use, so a spec
like ``{"error_code": "UNREGISTERED"}`` is enough.

A fault with an `action` is trouble on the connection instead of an error reply:

- ``{"action": "drop"}``: the request is handled (the message is created, if valid) and
  the connection is closed without an answer: the client cannot tell whether it was sent.
- ``{"action": "timeout", "delay_s": 30}``: handled, but answered only after `delay_s`
  (default 30 s, longer than clients' read timeouts).
- ``{"action": "reset"}``: nothing is handled; the connection is reset (TCP RST).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

Channel = Literal["sms", "push"]
CHANNELS: tuple[Channel, ...] = ("sms", "push")

# Twilio error code -> (HTTP status, message template).
TWILIO_CODES: dict[int, tuple[int, str]] = {
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "Internal Server Error"),
    20503: (503, "Service Unavailable"),
    21211: (400, "The 'To' number {to} is not a valid phone number."),
    21212: (
        400,
        "The 'From' number {from_} is not a valid phone number, shortcode, or alphanumeric "
        "sender ID.",
    ),
    21408: (
        400,
        (
            "Permission to send an SMS has not been enabled for the region "
            "indicated by the 'To' number: {to}."
        ),
    ),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21612: (
        400,
        (
            "The 'To' phone number: {to}, is not currently reachable using the "
            "'From' phone number: {from_} via SMS."
        ),
    ),
    21614: (400, "'To' number is not a valid mobile number"),
    21617: (400, "The concatenated message body exceeds the 1600 character limit."),
}
# HTTP status -> Twilio code, for faults that only give a status.
TWILIO_STATUS_CODES: dict[int, int] = {
    401: 20003,
    404: 20404,
    429: 20429,
    500: 20500,
    503: 20503,
}

# FCM errorCode -> HTTP status, as documented for the v1 API.
FCM_CODES: dict[str, int] = {
    "UNREGISTERED": 404,
    "QUOTA_EXCEEDED": 429,
    "SENDER_ID_MISMATCH": 403,
    "THIRD_PARTY_AUTH_ERROR": 401,
    "APNS_AUTH_ERROR": 401,
    "INVALID_ARGUMENT": 400,
    "UNAVAILABLE": 503,
    "INTERNAL": 500,
    "UNSPECIFIED_ERROR": 500,
}
# HTTP status -> (google.rpc status, default FCM errorCode).
FCM_STATUSES: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "INVALID_ARGUMENT"),
    401: ("UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"),
    403: ("PERMISSION_DENIED", "SENDER_ID_MISMATCH"),
    404: ("NOT_FOUND", "UNREGISTERED"),
    429: ("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"),
    500: ("INTERNAL", "INTERNAL"),
    503: ("UNAVAILABLE", "UNAVAILABLE"),
}
FCM_MESSAGES: dict[str, str] = {
    "NOT_FOUND": "Requested entity was not found.",
    "RESOURCE_EXHAUSTED": "Quota exceeded for sending messages.",
    "PERMISSION_DENIED": "SenderId mismatch",
    "UNAUTHENTICATED": "Auth error from APNS or Web Push Service",
    "INVALID_ARGUMENT": "Request contains an invalid argument.",
    "UNAVAILABLE": "The service is currently unavailable.",
    "INTERNAL": "Internal error encountered.",
}

_FIELDS = frozenset(
    {"status", "code", "error_code", "fcm_status", "message", "retry_after", "action", "delay_s"}
)
ACTIONS = ("drop", "timeout", "reset")
DEFAULT_TIMEOUT_DELAY_S = 30.0


@dataclass(frozen=True)
class Fault:
    """An error response to return instead of accepting a message, or a connection fault."""

    status: int  # 0 for a connection fault (`action`)
    code: int | None = None
    error_code: str | None = None
    fcm_status: str | None = None
    message: str | None = None
    retry_after: int | None = None
    action: str | None = None  # one of ACTIONS
    delay_s: float | None = None  # for "timeout"

    @classmethod
    def from_json(cls, spec: Mapping[str, Any]) -> Fault:
        unknown = set(spec) - _FIELDS
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        action = _opt_str(spec, "action")
        if action is not None:
            return cls.connection(action, _opt_float(spec, "delay_s"))
        code = _opt_int(spec, "code")
        error_code = _opt_str(spec, "error_code")
        status = _opt_int(spec, "status")
        if status is None and error_code:
            status = FCM_CODES.get(error_code, 500)
        if status is None and code is not None:
            status = TWILIO_CODES.get(code, (400, ""))[0]
        if status is None:
            raise ValueError("a fault needs 'status', 'code' or 'error_code'")
        if not 400 <= status <= 599:
            raise ValueError(f"fault status must be 4xx or 5xx, got {status}")
        return cls(
            status=status,
            code=code,
            error_code=error_code,
            fcm_status=_opt_str(spec, "fcm_status"),
            message=_opt_str(spec, "message"),
            retry_after=_opt_int(spec, "retry_after"),
        )

    @classmethod
    def connection(cls, action: str, delay_s: float | None = None) -> Fault:
        if action not in ACTIONS:
            raise ValueError(f"unknown fault action {action!r}; expected one of {ACTIONS}")
        if delay_s is not None and delay_s < 0:
            raise ValueError("delay_s must be >= 0")
        if action == "timeout" and delay_s is None:
            delay_s = DEFAULT_TIMEOUT_DELAY_S
        return cls(status=0, action=action, delay_s=delay_s if action == "timeout" else None)

    def to_json(self) -> dict[str, Any]:
        if self.action is not None:
            return {"action": self.action, "delay_s": self.delay_s}
        fields = {
            "status": self.status,
            "code": self.code,
            "error_code": self.error_code,
            "fcm_status": self.fcm_status,
            "message": self.message,
            "retry_after": self.retry_after,
        }
        return {k: v for k, v in fields.items() if v is not None}

    def twilio_code(self) -> int:
        if self.code is not None:
            return self.code
        # Twilio's SDK also falls back to the HTTP status when no code is sent.
        return TWILIO_STATUS_CODES.get(self.status, self.status)

    def twilio_message(self, to: str = "", from_: str = "") -> str:
        if self.message is not None:
            return self.message
        template = TWILIO_CODES.get(self.twilio_code(), (0, "Error"))[1]
        return template.format(to=to, from_=from_)

    def google_status(self) -> str:
        if self.fcm_status:
            return self.fcm_status
        return FCM_STATUSES.get(self.status, ("UNKNOWN", ""))[0]

    def fcm_error_code(self) -> str | None:
        # An explicit "" means: send no FcmError detail at all.
        if self.error_code is not None:
            return self.error_code or None
        return FCM_STATUSES.get(self.status, ("", ""))[1] or None

    def google_message(self) -> str:
        if self.message is not None:
            return self.message
        return FCM_MESSAGES.get(self.google_status(), "Unknown error.")


FaultSpec: TypeAlias = Fault | Mapping[str, Any]


def as_fault(spec: FaultSpec) -> Fault:
    return spec if isinstance(spec, Fault) else Fault.from_json(spec)


def split(*faults: Fault | None) -> tuple[Fault | None, Fault | None]:
    """(connection fault, error reply) from faults in precedence order.

    The first error reply wins; a connection fault met before it still applies to the
    connection (a dropped 400 is still dropped). A reset stops everything at once.
    """
    action: Fault | None = None
    for fault in faults:
        if fault is None:
            continue
        if fault.action is None:
            return action, fault
        if fault.action == "reset":
            return fault, None
        action = action or fault
    return action, None


def as_channel(value: object) -> Channel:
    for channel in CHANNELS:
        if value == channel:
            return channel
    raise ValueError(f"unknown channel {value!r}; expected one of {CHANNELS}")


def _opt_int(spec: Mapping[str, Any], key: str) -> int | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"fault field {key!r} must be an integer")
    return value


def _opt_float(spec: Mapping[str, Any], key: str) -> float | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"fault field {key!r} must be a number")
    return float(value)


def _opt_str(spec: Mapping[str, Any], key: str) -> str | None:
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"fault field {key!r} must be a string")
    return value
