"""Redaction of recipients for log lines."""

from __future__ import annotations


def mask_phone(number: str) -> str:
    """'+14155550100' -> '+1415*****00': enough to tell numbers apart."""
    if len(number) <= 7:
        return "*" * len(number)
    return number[:5] + "*" * (len(number) - 7) + number[-2:]


def mask_token(token: str) -> str:
    """Device tokens are credentials; keep only a short prefix and suffix."""
    if len(token) <= 12:
        return "*" * len(token)
    return f"{token[:4]}...{token[-4:]}"
