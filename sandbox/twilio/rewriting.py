"""What Twilio may do to a message between the create and the list: Smart Encoding.

Smart Encoding (on by default for new Messaging Services, or `SmartEncoded=true` on the
create) replaces Unicode characters that have a GSM-7 look-alike, so the stored `body`
(what fetch and list return) differs from the one sent. The common cases of Twilio's table
are modelled: curly quotes, dashes, the ellipsis, primes, odd spaces.
"""

from __future__ import annotations

LOOK_ALIKES: dict[str, str] = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-",
    "\u2026": "...",
    "\u00a0": " ", "\u2002": " ", "\u2003": " ", "\u2009": " ", "\u200b": "",
}  # fmt: skip
_TABLE = str.maketrans(LOOK_ALIKES)


def smart_encode(body: str) -> str:
    return body.translate(_TABLE)
