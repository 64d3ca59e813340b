"""What a person typed into the search box, as the lookups it could mean. Pure.

A support agent pastes whatever they have: a phone number in any format, a push token, a
shipment id, an event id, a notification id, a provider message id. Each meaning is one
indexed lookup; the console runs all that apply and shows what they find.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from rules.recipients import InvalidRecipient, normalise
from schemas import Channel

# Notification ids are bigserials: more digits than this is something else.
_MAX_ID_DIGITS = 18
_PUNCTUATION = re.compile(r"[\s().\-]")


class Field(enum.StrEnum):
    """The indexed columns a search can use (the history work indexes each one)."""

    ID = "id"
    RECIPIENT = "recipient"
    SUBJECT = "event_subject"
    EVENT_ID = "event_id"
    PROVIDER_MESSAGE_ID = "provider_message_id"


@dataclass(frozen=True, slots=True)
class Lookup:
    field: Field
    value: str


def phone(text: str, region: str) -> str | None:
    """The E.164 form of a number as a person types it (national, spaces, dashes), as the
    consumer normalises recipients; None if it is not a valid number."""
    try:
        return normalise(Channel.SMS, text, region)
    except InvalidRecipient:
        return None


def recipient_of(text: str, region: str) -> str:
    """A recipient as stored: the E.164 number if it is one, else the text (a push token)."""
    return phone(text, region) or text.strip()


def lookups(text: str, region: str) -> list[Lookup]:
    """Every lookup `text` could mean, most specific first; none for an empty box."""
    value = text.strip()
    if not value:
        return []
    found: list[Lookup] = []
    number = phone(value, region) if _looks_like_phone(value) else None
    if number is not None:
        found.append(Lookup(Field.RECIPIENT, number))
    if value.isdigit() and len(value) <= _MAX_ID_DIGITS:
        found.append(Lookup(Field.ID, value))
    if number is None:
        found.append(Lookup(Field.RECIPIENT, value))  # a push token, or a number as stored
    found += [
        Lookup(Field.EVENT_ID, value),
        Lookup(Field.SUBJECT, value),
        Lookup(Field.PROVIDER_MESSAGE_ID, value),
    ]
    return found


def _looks_like_phone(value: str) -> bool:
    """Digits with the punctuation people put in numbers (and a leading +), nothing else:
    `SHP-1234567` is a subject even though libphonenumber would find a number in it."""
    bare = _PUNCTUATION.sub("", value)
    return bare.removeprefix("+").isdigit() and 6 <= len(bare) <= 16
