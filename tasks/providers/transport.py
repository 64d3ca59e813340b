"""How a provider call failed on the wire, split by whether the request can have arrived.

Both SMS providers' transports (tasks/providers/twilio_http.py, vonage_http.py) raise these,
so the wrappers read one answer to the question failover asks: did the provider take it?
"""

from __future__ import annotations


class ProviderUnreachable(Exception):
    """No connection was made (refused, DNS, connect timeout): the request never left."""


class ProviderTimeout(Exception):
    """The request went out and no answer came within the timeout: it may have arrived."""


class ProviderDisconnected(Exception):
    """The connection broke once the request may have gone out (reset, closed, TLS)."""


def describe(exc: BaseException) -> str:
    """The error's type and text, without URLs' query strings (they could carry numbers)."""
    return type(exc).__name__ + ": " + str(exc).split("?", 1)[0][:300]
