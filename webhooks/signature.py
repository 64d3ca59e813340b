"""Twilio request signatures (X-Twilio-Signature), checked with the SDK's RequestValidator.

Twilio signs the URL it called, with its query string, plus the sorted form fields. Behind a
proxy that URL is not the one this process sees, so it is rebuilt from NOTIFY_PUBLIC_URL and
the route's own path.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from twilio.request_validator import RequestValidator


class Signatures:
    def __init__(self, auth_token: str, public_url: str) -> None:
        self._validator = RequestValidator(auth_token)
        self.public_url = public_url.rstrip("/")

    def url(self, path: str, query: bytes = b"") -> str:
        """The URL Twilio called: the public base, the route's path, the raw query string."""
        suffix = "?" + query.decode("latin-1") if query else ""
        return self.public_url + path + suffix

    def problem(
        self, path: str, query: bytes, form: Mapping[str, str], signature: str | None
    ) -> str | None:
        """None when the signature is valid, else the rejection reason."""
        if not signature:
            return "missing_signature"
        url = self.url(path, query)
        # Twilio's own request: one HMAC over the URL as configured. Anything else gets the
        # SDK's full check, which also tries the URL with and without the default port.
        expected = self._validator.compute_signature(url, form)
        if hmac.compare_digest(expected.encode(), signature.encode()):
            return None
        if self._validator.validate(url, form, signature):
            return None
        return "bad_signature"
