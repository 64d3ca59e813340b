"""Which To and From addresses Twilio accepts for an SMS.

To must be an E.164 number that is a real number, not just digits after a plus (Twilio
answers 21211 otherwise; validity per libphonenumber, as Twilio's own lookups do). From may
be an E.164 number, a short code (5-6 digits) or an alphanumeric sender ID (up to 11
letters, digits and spaces, at least one letter); anything else is 21212.
"""

from __future__ import annotations

import functools
import re

import phonenumbers

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_SHORT_CODE = re.compile(r"^\d{5,6}$")
_ALPHANUMERIC = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")


@functools.lru_cache(maxsize=65536)
def is_valid_number(number: str) -> bool:
    # Cached: libphonenumber costs tens of microseconds a call and numbers recur.
    if not _E164.match(number):
        return False
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(parsed))


def is_valid_sender(sender: str) -> bool:
    return (
        is_valid_number(sender)
        or _SHORT_CODE.match(sender) is not None
        or _ALPHANUMERIC.match(sender) is not None
    )
