"""SMS through Vonage's Messages API (POST /v1/messages) with the official vonage SDK, 4.x.

Auth is the application's JWT (VONAGE_APPLICATION_ID and the private key in the file
VONAGE_PRIVATE_KEY): the SDK signs one per request. Errors are RFC 7807 problems, read by
tasks.classification. The Messages API has no lookup of a sent SMS (its GET-less
/v1/messages only takes PATCH for WhatsApp and RCS; the Reports API is a separate, delayed,
opt-in product), so `has_lookup` is False: a send whose answer was lost is never resent
anywhere (docs/delivery-guarantees.md).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from vonage import Auth, HttpClientOptions, Vonage
from vonage_http_client.errors import HttpRequestError
from vonage_messages import Sms
from vonage_utils.errors import VonageError

from notify.settings import Settings
from notify.webhook_paths import VONAGE_STATUS_PATH
from schemas import (
    AmbiguousDeliveryError,
    ConfigurationError,
    PermanentDeliveryError,
    RefusedDeliveryError,
)
from tasks.classification import classify_vonage, error_for, retry_after_seconds, vonage_code
from tasks.providers.transport import ProviderDisconnected, ProviderTimeout, ProviderUnreachable
from tasks.providers.vonage_http import RedirectingAdapter


class VonageSms:
    """One SDK client per process, shared by the sender threads (built on first use)."""

    has_lookup = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._built: Vonage | None = None

    def _client(self) -> Vonage:
        with self._lock:
            if self._built is None:
                s = self.settings
                if not (s.vonage_application_id and s.vonage_private_key and s.vonage_from):
                    raise ConfigurationError(
                        "config_error",
                        "VONAGE_APPLICATION_ID, VONAGE_PRIVATE_KEY and VONAGE_FROM must be set",
                    )
                try:
                    key = Path(s.vonage_private_key).read_text()
                except OSError as exc:
                    raise ConfigurationError(
                        "config_error", f"VONAGE_PRIVATE_KEY cannot be read: {exc}"
                    ) from None
                # The SDK logs each request's body (numbers) at DEBUG and each error answer at
                # WARNING; ours say what matters, masked.
                logging.getLogger("vonage").setLevel(logging.ERROR)
                client = Vonage(
                    Auth(application_id=s.vonage_application_id, private_key=key),
                    HttpClientOptions(max_retries=0, pool_maxsize=max(8, s.send_concurrency)),
                )
                adapter = RedirectingAdapter(
                    s.vonage_api_url, s.provider_timeout_seconds, max(8, s.send_concurrency)
                )
                # The SDK has no hook for its transport; its session is where requests goes.
                client.http_client._session.mount("https://", adapter)
                self._built = client
            return self._built

    def _message(self, to: str, body: str) -> Sms:
        s = self.settings
        assert s.vonage_from is not None
        status = f"{s.public_url}{VONAGE_STATUS_PATH}" if s.public_url else None
        # Vonage takes E.164 without the leading `+`; an alphanumeric sender as it is.
        return Sms(
            to=to.removeprefix("+"),
            from_=s.vonage_from.removeprefix("+"),
            text=body,
            webhook_url=status,
        )

    def send(self, to: str, body: str) -> str:
        """Return the message UUID, or raise a DeliveryError subclass (as TwilioSms.send)."""
        client = self._client()
        try:
            message = self._message(to, body)
        except ValidationError as exc:
            # The SDK's own model refuses it before any request: nothing can have left.
            raise PermanentDeliveryError("invalid-params", _first_error(exc)) from None
        try:
            answer = client.messages.send(message)
        except HttpRequestError as exc:
            raise problem_error(exc) from None
        except ProviderUnreachable as exc:
            raise RefusedDeliveryError("unreachable", str(exc)) from None
        except ProviderTimeout as exc:
            raise AmbiguousDeliveryError("timeout", str(exc)) from None
        except ProviderDisconnected as exc:
            raise AmbiguousDeliveryError("connection_error", str(exc)) from None
        except VonageError as exc:  # a JWT that cannot be made: the key is not a key
            raise ConfigurationError("config_error", f"{type(exc).__name__}: {exc}"[:300]) from None
        return str(answer.message_uuid)


def problem_error(exc: HttpRequestError) -> Exception:
    """An RFC 7807 answer as the branch of the error tree its code or status calls for."""
    response = exc.response
    status = int(response.status_code)
    problem: dict[str, Any] = {}
    try:
        decoded = response.json()
        problem = decoded if isinstance(decoded, dict) else {}
    except ValueError:
        pass
    code = vonage_code(problem.get("type"))
    kind = classify_vonage(status, code)
    text = " - ".join(str(problem[k]) for k in ("title", "detail") if problem.get(k))
    retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    return error_for(kind, code or f"http_{status}", (text or response.reason or "")[:500],
                     retry_after, status)  # fmt: skip


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "invalid message"
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first.get('msg', 'invalid')}"[:300]
