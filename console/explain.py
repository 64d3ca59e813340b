"""One plain sentence saying what happened to a notification and what to do, as GOV.UK
Notify's status guidance does. Pure: the notification's detail in, text out."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from console.queries import Detail, Row
from schemas import Status

Shown = Callable[[str], str]

# Provider codes support staff meet most, in words a customer's question can be answered in.
PROVIDER_CODES = {
    "21211": "the number is not a valid phone number",
    "21408": "SMS to that region are not enabled on the Twilio account",
    "21610": "the number has replied STOP to our sender",
    "21612": "the carrier cannot be reached from our sending number",
    "21614": "the number is not a mobile number",
    "30003": "the phone was switched off or out of coverage",
    "30004": "the number blocks messages from us",
    "30005": "the number is unknown to its carrier (it may no longer exist)",
    "30006": "the number is a landline or its carrier cannot take SMS",
    "30007": "the carrier filtered the message as spam",
    "30008": "the carrier reported an unknown error",
    "UNREGISTERED": "the app was uninstalled or its token expired",
    "SENDER_ID_MISMATCH": "the token belongs to another Firebase project",
    "INVALID_ARGUMENT": "the push token is not valid",
    "outcome_unknown": "the provider's answer was lost and could not be looked up",
}

_SUPPRESSED_BECAUSE = {
    "opt_out": "the customer replied {word} on {day}; they can text START to opt back in",
    "21610": "the provider reported on {day} that the customer had replied STOP; they can "
    "text START to opt back in",
    "unregistered": "the app was uninstalled or the token expired (reported {day}); the app "
    "registers a new token when it is opened again",
    "invalid_token": "the push token was reported invalid on {day}; the app must register a "
    "new one",
    "manual": "an operator suppressed this recipient on {day} ({source}); an operator can "
    "lift it on the recipient's page",
}


def _day(when: datetime | None) -> str:
    return "an unknown date" if when is None else f"{when:%-d %b %Y}"


def _when(when: datetime | None) -> str:
    return "an unknown time" if when is None else f"{when:%-d %b %Y %H:%M} UTC"


def _meaning(code: str | None) -> str:
    if code is None:
        return "no reason was given"
    meaning = PROVIDER_CODES.get(code)
    return f"error {code}: {meaning}" if meaning else f"error {code}"


def _suppressed(d: Detail) -> str:
    added = [h for h in d.suppression_history if h["action"] == "added"]
    last = added[-1] if added else d.suppression
    if last is None:
        return "Not sent: the recipient was suppressed when it was due."
    reason, source = str(last["reason"]), str(last["source"])
    word = "STOP"
    template = _SUPPRESSED_BECAUSE.get(reason, "the recipient was suppressed on {day}")
    when = last.get("at") or last.get("created_at")
    return "Not sent: " + template.format(day=_day(when), word=word, source=source) + "."


def _failed(n: Row, shown: Shown) -> str:
    code = n.get("error_code")
    if code == "invalid_recipient":
        return (
            f"Not sent: {shown(n['recipient']) or 'the recipient'} is not a valid phone number "
            "or token. Correct it in the system that sent the event; the next event is sent."
        )
    if code == "template_error":
        return (
            f"Not sent: rule {n['rule']}'s template failed for this event "
            f"({n.get('error_message')}). Fix the rule (try it with the preview page), then "
            "replay or re-publish the event."
        )
    if code == "expired":
        return (
            f"Not sent: it was due at {_when(n.get('send_at'))}, too late to be useful when "
            "it was handled (NOTIFY_STALE_AFTER_SECONDS). Nothing to do."
        )
    if code == "country_not_allowed":
        return "Not sent: SMS to this number's country are not allowed (NOTIFY_SMS_COUNTRIES)."
    attempts = n.get("attempts") or 0
    return (
        f"Failed after {attempts} attempt{'s' if attempts != 1 else ''}: the provider refused it "
        f"({_meaning(code)}). Check the recipient with the customer; it is not retried."
    )


def _skipped(d: Detail) -> str:
    n = d.notification
    code = n.get("error_code")
    if code == "suppressed":
        return _suppressed(d)
    if code == "throttled":
        return (
            f"Not sent: rule {n['rule']} had already notified this recipient about this as often "
            "as its throttle allows. Nothing to do unless the throttle is wrong."
        )
    if code == "country_paused":
        return (
            "Not sent: SMS to this country were paused after reaching the hourly limit; an "
            "operator can resume them with `notify sms resume`."
        )
    return f"Not sent: skipped ({code})."


def _delivered(d: Detail, _: Shown) -> str:
    last = d.receipts[-1]["received_at"] if d.receipts else d.notification["updated_at"]
    return f"Delivered: the carrier reported it delivered at {_when(last)}. Nothing to do."


def _sent(d: Detail, _: Shown) -> str:
    n = d.notification
    if n["channel"] == "push":
        return (
            f"Sent: FCM accepted it at {_when(n['updated_at'])}. FCM does not report "
            "delivery; if the customer saw nothing, check the app's notification settings."
        )
    return (
        f"Sent to the carrier at {_when(n['updated_at'])}; no delivery receipt yet. "
        "Receipts usually come within minutes; if none comes it is looked up at the "
        "provider (NOTIFY_RECEIPT_TIMEOUT_SECONDS)."
    )


def _undelivered(d: Detail, _: Shown) -> str:
    return (
        f"Not delivered: the carrier reported {_meaning(d.notification.get('error_code'))}. "
        "Ask the customer to check their phone; a later notification is tried again."
    )


def _cancelled(d: Detail, _: Shown) -> str:
    n = d.notification
    by = n.get("cancelled_by")
    cause = f"event {by} arrived" if by else "it was cancelled"
    return (
        f"Cancelled before it was due: {cause} for {n.get('event_subject') or 'its subject'}"
        ", so nothing was sent. Nothing to do."
    )


def _scheduled(d: Detail, _: Shown) -> str:
    n = d.notification
    cancels = ", ".join(n.get("cancel_on") or []) or "nothing"
    return (
        f"Scheduled for {_when(n.get('send_at'))}. It is cancelled if {cancels} arrives for "
        "the same subject first; an operator can cancel it now."
    )


def _pending(_: Detail, __: Shown) -> str:
    return (
        "Waiting for a worker to send it. If it stays pending for more than a few minutes, "
        "check the workers and the send rate (the operations page)."
    )


def _sending(_: Detail, __: Shown) -> str:
    return "Being sent now: the provider's answer is awaited."


_BY_STATUS: dict[Status, Callable[[Detail, Shown], str]] = {
    Status.DELIVERED: _delivered,
    Status.SENT: _sent,
    Status.UNDELIVERED: _undelivered,
    Status.FAILED: lambda d, shown: _failed(d.notification, shown),
    Status.SKIPPED: lambda d, _: _skipped(d),
    Status.CANCELLED: _cancelled,
    Status.SCHEDULED: _scheduled,
    Status.PENDING: _pending,
    Status.SENDING: _sending,
}


def explain(d: Detail, shown: Shown) -> str:
    return _BY_STATUS[Status(d.notification["status"])](d, shown)
