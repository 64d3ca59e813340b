"""Provider error -> outcome. One table per provider; pure, so it is unit-tested alone."""

from __future__ import annotations

import random
import re
from typing import Literal

from schemas import (
    Channel,
    ConfigurationError,
    DeliveryError,
    PermanentDeliveryError,
    Reason,
    RefusedDeliveryError,
    TransientDeliveryError,
)

Kind = Literal["transient", "permanent", "config"]

# Twilio REST error codes (https://www.twilio.com/docs/api/errors) that retrying cannot fix.
TWILIO_PERMANENT: dict[int, str] = {
    21211: "invalid 'To' phone number",
    21212: "invalid 'From' phone number",
    21217: "phone number does not appear to be valid",
    21401: "invalid phone number",
    21407: "this phone number type does not support SMS",
    21408: "permission to send to this region is not enabled",
    21602: "message body is required",
    21604: "'To' phone number is required",
    21610: "recipient unsubscribed (STOP)",
    21612: "the 'To' number is not reachable from this 'From' number",
    21614: "'To' number is not a valid mobile number",
    21617: "message body exceeds 1600 characters",
    21635: "'To' number cannot be a landline",
    30003: "unreachable destination handset",
    30004: "message blocked",
    30005: "unknown destination handset",
    30006: "landline or unreachable carrier",
    30007: "message filtered as spam",
}
# Our account or sender is wrong: every message would fail, so operators must hear of it.
TWILIO_CONFIG: dict[int, str] = {
    20003: "authentication failed",
    20008: "resource not accessible with test account credentials",
    20404: "account or resource not found",
    21603: "'From' phone number is required",
    21606: "the 'From' number is not a valid SMS-capable number for this account",
    21608: "trial accounts can only send to verified numbers",
    21659: "'From' is not a Twilio number",
    30002: "account suspended",
}
TWILIO_TRANSIENT: dict[int, str] = {
    20429: "too many requests",
    20500: "internal server error",
    20503: "service unavailable",
    30001: "queue overflow",
    30008: "unknown error",
}

# Vonage Messages API errors are RFC 7807 problems; the code is the fragment of `type`
# (https://developer.vonage.com/api-errors/messages#1150, .../api-errors#low-balance), as
# https://developer.vonage.com/api-errors and .../api-errors/messages list them.
VONAGE_PERMANENT: dict[str, str] = {
    "1010": "missing params",
    "1020": "invalid params",
    "1021": "invalid tag",
    "1022": "invalid template",
    "1040": "invalid message (e.g. an unrecognised number prefix)",
    "1050": "number barred",
    "1090": "message too long",
    "1150": "invalid params",
    "invalid-params": "the value of one or more parameters is invalid",
}
VONAGE_CONFIG: dict[str, str] = {
    "1060": "partner account barred",
    "1070": "partner quota exceeded (no credit)",
    "1080": "account not enabled for REST",
    "1120": "illegal sender address",
    "unauthorized": "credentials not correct",
    "forbidden": "the account may not do this",
    "low-balance": "account balance too low",
    "account-suspended": "account suspended",
    "unprovisioned": "credentials have no access to the Messages API",
    "invalid-api-key": "API key unknown",
    "jwt-expired": "the JWT has expired (our clock?)",
    "jwt-revoked": "the JWT was revoked",
}
VONAGE_TRANSIENT: dict[str, str] = {
    "1000": "throttled: over the account's submission capacity",
    "throttled": "throttled: over the account's submission capacity",
    "1030": "internal error",
    "1100": "communication failed: not submitted",
}

# HTTP answers that both providers document as refusing the request before anything was
# accepted: too many requests, service unavailable. After one of these (or no connection at
# all) another provider may send the message; after any other 5xx it may not (a 500 or 504
# can come after the message was created).
REFUSING_STATUSES: frozenset[int] = frozenset({429, 503})

# FCM v1 error codes (details[].errorCode) and canonical statuses firebase-admin exposes.
FCM_KINDS: dict[str, Kind] = {
    "UNREGISTERED": "permanent",
    "SENDER_ID_MISMATCH": "permanent",
    "INVALID_ARGUMENT": "permanent",
    "NOT_FOUND": "permanent",
    "FAILED_PRECONDITION": "permanent",
    "QUOTA_EXCEEDED": "transient",
    "RESOURCE_EXHAUSTED": "transient",
    "UNAVAILABLE": "transient",
    "INTERNAL": "transient",
    "DEADLINE_EXCEEDED": "transient",
    "UNKNOWN": "transient",
    "ABORTED": "transient",
    "THIRD_PARTY_AUTH_ERROR": "config",
    "APNS_AUTH_ERROR": "config",
    "UNAUTHENTICATED": "config",
    "PERMISSION_DENIED": "config",
}

# FCM's quota answers: back off exponentially from at least a minute unless Retry-After says
# otherwise (firebase.google.com/docs/cloud-messaging/error-codes, QUOTA_EXCEEDED; 429).
FCM_QUOTA = frozenset({"QUOTA_EXCEEDED", "RESOURCE_EXHAUSTED"})
# RFC 6749 section 5.2: the token endpoint refusing our grant or client. Retrying the same
# key cannot fix these; anything else (a 5xx, a proxy's page, server_error) is an outage.
OAUTH_REFUSALS = frozenset(
    {
        "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
        "unsupported_grant_type", "invalid_scope", "access_denied",
    }
)  # fmt: skip


def classify_token_refusal(retryable: bool, answer: object) -> Kind:
    """A google-auth RefreshError: transient when google-auth says so or the answer is not
    an OAuth refusal (e.g. a 502 page, which google-auth does not count as retryable)."""
    if retryable:
        return "transient"
    error = answer.get("error") if isinstance(answer, dict) else None
    return "config" if error in OAUTH_REFUSALS else "transient"


def quota_floor(channel: Channel, code: str, retry_after: float | None, attempt: int,
                base: float) -> float | None:  # fmt: skip
    """The least wait after a quota answer without Retry-After: base, 2 x base, 4 x base..."""
    if channel is not Channel.PUSH or code not in FCM_QUOTA or retry_after is not None:
        return retry_after
    return float(base * 2 ** max(0, attempt - 1))


# Answers that say the recipient itself must get nothing more: the number unsubscribed, the
# token is dead or not ours. Our own credentials' errors (THIRD_PARTY_AUTH_ERROR: the APNs or
# web-push key FCM holds for us) say nothing about the device and are not here.
SUPPRESSING: dict[tuple[Channel, str], Reason] = {
    (Channel.SMS, "21610"): Reason.TWILIO_21610,
    (Channel.PUSH, "UNREGISTERED"): Reason.UNREGISTERED,
    (Channel.PUSH, "SENDER_ID_MISMATCH"): Reason.INVALID_TOKEN,
}
# INVALID_ARGUMENT covers any bad field of the message; FCM names the token when it is the
# token: "The registration token is not a valid FCM registration token".
_BAD_TOKEN = re.compile(r"registration token is not a valid", re.IGNORECASE)


def suppression_for(channel: Channel, code: str, message: str) -> Reason | None:
    """Whether a provider's permanent error means: suppress this recipient, and why."""
    reason = SUPPRESSING.get((channel, code))
    if reason is None and channel is Channel.PUSH and code == "INVALID_ARGUMENT":
        return Reason.INVALID_TOKEN if _BAD_TOKEN.search(message) else None
    return reason


def classify_twilio(status: int | None, code: int | None) -> Kind:
    """By Twilio code first; unknown codes by HTTP status (5xx/429 retry, other 4xx do not)."""
    if code is not None:
        if code in TWILIO_PERMANENT:
            return "permanent"
        if code in TWILIO_CONFIG:
            return "config"
        if code in TWILIO_TRANSIENT:
            return "transient"
    if status is None or status == 429 or status >= 500:
        return "transient"
    if status in (401, 403):
        return "config"
    return "permanent"


def classify_vonage(status: int | None, code: str | None) -> Kind:
    """By the problem's code first; unknown codes by HTTP status (402: our balance)."""
    if code is not None:
        if code in VONAGE_PERMANENT:
            return "permanent"
        if code in VONAGE_CONFIG:
            return "config"
        if code in VONAGE_TRANSIENT:
            return "transient"
    if status is None or status == 429 or status >= 500:
        return "transient"
    if status in (401, 402, 403):
        return "config"
    return "permanent"


def vonage_code(problem_type: str | None) -> str | None:
    """The code a problem's `type` names: its URL fragment (`...#1150` -> `1150`)."""
    if not problem_type or "#" not in problem_type:
        return None
    code = problem_type.rsplit("#", 1)[1].strip()
    return code[:32] or None


def classify_fcm(code: str, status: int | None = None) -> Kind:
    if code in FCM_KINDS:
        return FCM_KINDS[code]
    if status is None or status == 429 or status >= 500:
        return "transient"
    return "permanent"


def error_for(
    kind: Kind,
    code: str,
    message: str,
    retry_after: float | None = None,
    status: int | None = None,
) -> DeliveryError:
    """The branch of the error tree that tells the caller what to do with this kind."""
    if kind == "transient":
        if status in REFUSING_STATUSES:
            return RefusedDeliveryError(code, message, retry_after)
        return TransientDeliveryError(code, message, retry_after)
    if kind == "config":
        return ConfigurationError(code, message)
    return PermanentDeliveryError(code, message)


def kind_of(exc: DeliveryError) -> Kind:
    """`error_for` read backwards: the label metrics and attempt outcomes use."""
    if isinstance(exc, TransientDeliveryError):
        return "transient"
    if isinstance(exc, ConfigurationError):
        return "config"
    return "permanent"


def backoff(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
    retry_after_cap: float | None = None,
) -> float:
    """Exponential backoff with jitter; a provider's Retry-After is a floor, not a hint.

    Retry-After may exceed `cap` up to `retry_after_cap` (the broker's visibility timeout
    bounds how long a countdown can safely be held).
    """
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    delay = (rng or random).uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap if retry_after_cap is None else retry_after_cap))
    return delay


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After as seconds (the HTTP-date form is rare for these APIs and ignored)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
