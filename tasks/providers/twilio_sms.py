"""SMS through the official twilio SDK, pointed at TWILIO_API_URL when set."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from consumer.settings import Settings
from schemas import ConfigurationError, PermanentDeliveryError, TransientDeliveryError
from tasks.classification import classify_twilio, retry_after_seconds

TWILIO_BASE = "https://api.twilio.com"

# The SDK logs every request's URL and headers at INFO; keep that (and numbers) out of logs.
_sdk_log = logging.getLogger("notify.twilio_sdk")
_sdk_log.setLevel(logging.WARNING)


class RedirectingHttpClient(TwilioHttpClient):
    """The stock client, with the API host swapped for a mock or proxy.

    One instance serves every sender thread; each thread's last response headers (for
    Retry-After) are kept thread-locally by a requests hook instead of on the instance.
    """

    def __init__(self, base_url: str, timeout: float, pool_size: int = 64) -> None:
        self._seen = threading.local()
        hooks = {"response": [self._remember]}
        super().__init__(
            pool_connections=True, timeout=timeout, logger=_sdk_log, max_retries=0,
            request_hooks=hooks,
        )  # fmt: skip
        self.base_url = base_url.rstrip("/")
        if self.session is not None:
            # Proxies and CA bundles come from this process's settings, not re-read from the
            # environment on every request (that lookup was a tenth of a send's CPU).
            self.session.trust_env = False
            adapter = requests.adapters.HTTPAdapter(pool_maxsize=pool_size, max_retries=0)
            self.session.mount("http://", adapter)
            self.session.mount("https://", adapter)

    def _remember(self, response: requests.Response, *args: object, **kwargs: object) -> None:
        self._seen.headers = response.headers

    def last_headers(self) -> Mapping[str, str]:
        """Headers of the last response this thread received."""
        headers: Mapping[str, str] = getattr(self._seen, "headers", {})
        return headers

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if url.startswith(TWILIO_BASE) and self.base_url != TWILIO_BASE:
            url = self.base_url + url[len(TWILIO_BASE) :]
        return super().request(method, url, params, data, headers, auth, timeout, allow_redirects)


class TwilioSms:
    """One SDK client per process, shared by the sender threads (built on first use)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._built: tuple[Client, RedirectingHttpClient] | None = None

    def _client(self) -> tuple[Client, RedirectingHttpClient]:
        with self._lock:
            if self._built is None:
                s = self.settings
                if not (s.twilio_account_sid and s.twilio_auth_token):
                    raise ConfigurationError(
                        "config_error", "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set"
                    )
                http = RedirectingHttpClient(
                    s.twilio_api_url, s.provider_timeout_seconds, max(8, s.send_concurrency)
                )
                client = Client(s.twilio_account_sid, s.twilio_auth_token, http_client=http)
                self._built = (client, http)
            return self._built

    def send(self, to: str, body: str) -> str:
        """Return the message SID, or raise a DeliveryError subclass."""
        sender = self.settings.twilio_phone_number
        if not sender:
            raise ConfigurationError("config_error", "TWILIO_PHONE_NUMBER must be set")
        client, http = self._client()
        try:
            message = client.messages.create(to=to, from_=sender, body=body)
        except TwilioRestException as exc:
            raise _rest_error(exc, http) from None
        except requests.Timeout as exc:
            raise TransientDeliveryError("timeout", _safe(exc)) from None
        except requests.RequestException as exc:
            raise TransientDeliveryError("connection_error", _safe(exc)) from None
        return str(message.sid)

    def find_sent(self, to: str, body: str, since: Any) -> str | None:
        """The SID of a message with this body already sent to `to` since `since`, if any."""
        client, _ = self._client()
        for message in client.messages.list(to=to, date_sent_after=since, limit=50):
            if message.body == body:
                return str(message.sid)
        return None


def _safe(exc: BaseException) -> str:
    """Exception text without URLs' query strings (they could carry numbers)."""
    return type(exc).__name__ + ": " + str(exc).split("?", 1)[0][:300]


def _rest_error(exc: TwilioRestException, http: RedirectingHttpClient) -> Exception:
    code = exc.code
    kind = classify_twilio(exc.status, code)
    label = str(code) if code is not None else f"http_{exc.status}"
    message = str(exc.msg)[:500]
    if kind == "transient":
        header = http.last_headers().get("Retry-After")
        return TransientDeliveryError(label, message, retry_after_seconds(header))
    if kind == "config":
        return ConfigurationError(label, message)
    return PermanentDeliveryError(label, message)
