"""The country of an E.164 number, and whether SMS may go there. Pure."""

from __future__ import annotations

import functools

import phonenumbers


@functools.lru_cache(maxsize=65536)
def country_of(number: str) -> str | None:
    """The ISO 3166 code of an E.164 number (`+1416...` -> `CA`); None when no region has it."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(parsed)
    return None if region in (None, "ZZ", "001") else region


def allowed(country: str | None, countries: frozenset[str] | None) -> bool:
    """NOTIFY_SMS_COUNTRIES: None allows any number; else only those countries."""
    return countries is None or country in countries
