"""Recipient normalisation: E.164 phone numbers and push tokens. Pure."""

from __future__ import annotations

import functools
import re

import phonenumbers

from schemas import Channel

_TOKEN = re.compile(r"^[\x21-\x7e]{1,4096}$")


class InvalidRecipient(ValueError):
    """Not a number or token any provider would accept."""


def normalise(channel: Channel, raw: object, default_region: str) -> str:
    """E.164 for SMS (with a default region for national numbers); a plain token for push."""
    text = "" if raw is None else str(raw).strip()
    if not text:
        raise InvalidRecipient("recipient is empty")
    if channel is Channel.PUSH:
        if not _TOKEN.match(text):
            raise InvalidRecipient("push token must be 1-4096 printable characters")
        return text
    return _phone(text, default_region)


# Parsing and validating a number is the costliest step of routing; customers repeat.
@functools.lru_cache(maxsize=65536)
def _phone(text: str, default_region: str) -> str:
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidRecipient(f"not a phone number: {exc}") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidRecipient("not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
