"""The transport under the vonage SDK: a requests adapter on the SDK's own session.

The SDK builds every URL as `https://{api_host}{path}`, so a plain-HTTP emulator or a proxy
cannot be named through its options; this adapter sends what it built to VONAGE_API_URL
instead. It also makes the one decision the SDK must not make for us: the SDK resends a
request whose connection closed before the answer (`RemoteDisconnected`), which after a POST
can be a second message. Here every transport failure leaves as one of ours, split by whether
the request can have arrived, so nothing is sent twice behind our back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter

from tasks.providers.transport import (
    ProviderDisconnected,
    ProviderTimeout,
    ProviderUnreachable,
    describe,
)

VONAGE_BASE = "https://api.nexmo.com"


class RedirectingAdapter(HTTPAdapter):
    """Mounted for `https://` on the SDK's session; no retries of its own (urllib3's default
    would retry connects, which is harmless, and nothing else, which is what we want)."""

    def __init__(self, base_url: str, timeout: float, pool_size: int) -> None:
        super().__init__(pool_connections=2, pool_maxsize=pool_size, max_retries=0)
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        url = request.url or ""
        if url.startswith(VONAGE_BASE) and self.base_url != VONAGE_BASE:
            request.url = self.base_url + url[len(VONAGE_BASE) :]
        try:
            return super().send(request, stream, self.timeout, verify, cert, proxies)
        except requests.exceptions.RequestException as exc:
            raise transport_error(exc) from None


def transport_error(exc: requests.exceptions.RequestException) -> Exception:
    """Only a failure to connect proves the request never left (see twilio_http)."""
    text = describe(exc)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return ProviderUnreachable(text)
    if isinstance(exc, requests.exceptions.ConnectionError) and _never_connected(exc):
        return ProviderUnreachable(text)
    if isinstance(exc, requests.exceptions.Timeout):
        return ProviderTimeout(text)
    return ProviderDisconnected(text)


def _never_connected(exc: requests.exceptions.ConnectionError) -> bool:
    """requests wraps urllib3's MaxRetryError, whose reason says what failed; a refused or
    unresolvable connect is a NewConnectionError, a ConnectTimeoutError subclass."""
    reason: Any = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, urllib3.exceptions.ConnectTimeoutError)
