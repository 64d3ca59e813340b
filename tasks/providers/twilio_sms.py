"""SMS through the official twilio SDK, pointed at TWILIO_API_URL when set."""

from __future__ import annotations

import threading
from datetime import datetime
from decimal import Decimal, InvalidOperation

from twilio.base import values
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from notify.settings import Settings
from notify.webhook_paths import STATUS_CALLBACK_PATH
from schemas import (
    AmbiguousDeliveryError,
    ConfigurationError,
    PermanentDeliveryError,
    RefusedDeliveryError,
    TransientDeliveryError,
)
from tasks import reconcile
from tasks.classification import classify_twilio, error_for, retry_after_seconds
from tasks.providers.twilio_http import (
    ProviderDisconnected,
    ProviderTimeout,
    ProviderUnreachable,
    Urllib3HttpClient,
)


class TwilioSms:
    """One SDK client per process, shared by the sender threads (built on first use)."""

    # Twilio's message list finds a send whose answer was lost (tasks/reconcile.py).
    has_lookup = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._built: tuple[Client, Urllib3HttpClient] | None = None

    def _client(self) -> tuple[Client, Urllib3HttpClient]:
        with self._lock:
            if self._built is None:
                s = self.settings
                if not (s.twilio_account_sid and s.twilio_auth_token):
                    raise ConfigurationError(
                        "config_error", "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set"
                    )
                http = Urllib3HttpClient(
                    s.twilio_api_url, s.provider_timeout_seconds, max(8, s.send_concurrency)
                )
                client = Client(s.twilio_account_sid, s.twilio_auth_token, http_client=http)
                self._built = (client, http)
            return self._built

    def _sender(self) -> dict[str, str]:
        """From our number, or through a Messaging Service (Twilio picks among its numbers,
        and the request carries MessagingServiceSid and no From)."""
        s = self.settings
        if s.twilio_messaging_service_sid:
            return {"messaging_service_sid": s.twilio_messaging_service_sid}
        if s.twilio_phone_number:
            return {"from_": s.twilio_phone_number}
        raise ConfigurationError(
            "config_error", "TWILIO_PHONE_NUMBER or TWILIO_MESSAGING_SERVICE_SID must be set"
        )

    def send(self, to: str, body: str) -> str:
        """Return the message SID, or raise a DeliveryError subclass.

        AmbiguousDeliveryError when the request went out and its answer was lost;
        RefusedDeliveryError when no connection was made at all (`unreachable`) or Twilio
        refused it before creating anything (429, 503).
        """
        sender = self._sender()
        client, http = self._client()
        try:
            message = client.messages.create(
                to=to, body=body, status_callback=self.status_callback, **sender
            )
        except TwilioRestException as exc:
            raise _rest_error(exc, http) from None
        except ProviderUnreachable as exc:
            raise RefusedDeliveryError("unreachable", str(exc)) from None
        except ProviderTimeout as exc:
            raise AmbiguousDeliveryError("timeout", str(exc)) from None
        except ProviderDisconnected as exc:
            raise AmbiguousDeliveryError("connection_error", str(exc)) from None
        return str(message.sid)

    @property
    def status_callback(self) -> str | object:
        """Where Twilio reports delivery (interfaces section 6); unset: the SDK sends none."""
        base = self.settings.public_url
        return f"{base}{STATUS_CALLBACK_PATH}" if base else values.unset

    def fetch_status(self, sid: str) -> tuple[str, str | None]:
        """Twilio's status and error code for one message (a receipt that never came)."""
        client, http = self._client()
        try:
            message = client.messages(sid).fetch()
        except TwilioRestException as exc:
            if exc.status == 404:  # not a configuration error here: this message is unknown
                raise PermanentDeliveryError("20404", "no such message") from None
            raise _rest_error(exc, http) from None
        except ProviderUnreachable as exc:
            raise RefusedDeliveryError("unreachable", str(exc)) from None
        except (ProviderTimeout, ProviderDisconnected) as exc:
            # A read needs no reconciling: asking again is always safe.
            raise TransientDeliveryError("timeout", str(exc)) from None
        code = message.error_code
        return str(message.status), None if code in (None, "", 0) else str(code)

    def fetch_price(self, sid: str) -> tuple[Decimal, str] | None:
        """What Twilio charged for one message, positive, and its currency; None until Twilio
        has priced it (often hours after sending). Errors are raised as `fetch_status` does."""
        client, http = self._client()
        try:
            message = client.messages(sid).fetch()
        except TwilioRestException as exc:
            if exc.status == 404:
                raise PermanentDeliveryError("20404", "no such message") from None
            raise _rest_error(exc, http) from None
        except ProviderUnreachable as exc:
            raise TransientDeliveryError("unreachable", str(exc)) from None
        except (ProviderTimeout, ProviderDisconnected) as exc:
            raise TransientDeliveryError("timeout", str(exc)) from None
        return parse_price(message.price, message.price_unit)

    def candidates(
        self, to: str, body: str, since: datetime
    ) -> tuple[list[reconcile.Listed], bool]:
        """Messages from our sender to `to` that could be a send made since `since`.

        Any failure (Twilio's or the network's) is raised as is: the caller must not send.
        """
        sender = self._sender()
        # A Messaging Service send has no From we chose: list by To alone, and let the
        # matcher accept the service SID as the sender.
        by_sender = {"from_": sender["from_"]} if "from_" in sender else {}
        ours = sender.get("from_") or sender["messaging_service_sid"]
        client, _ = self._client()
        # No DateSent filter (see tasks.reconcile); `stream` fetches pages only as the walk
        # goes on, following Twilio's next_page_uri.
        listed = (
            reconcile.Listed(
                sid=str(m.sid),
                body=m.body,
                date_created=m.date_created,
                date_sent=m.date_sent,
                from_=m.from_,
                messaging_service_sid=m.messaging_service_sid,
            )
            for m in client.messages.stream(to=to, page_size=reconcile.PAGE_SIZE, **by_sender)
        )
        return reconcile.candidates(listed, body=body, sender=ours, since=since)


def parse_price(price: object, unit: object) -> tuple[Decimal, str] | None:
    """Twilio reports a debit as a negative string ("-0.00790"), null until it knows it."""
    if price in (None, "") or not unit:
        return None
    try:
        return abs(Decimal(str(price))), str(unit).upper()
    except InvalidOperation:
        return None


def _rest_error(exc: TwilioRestException, http: Urllib3HttpClient) -> Exception:
    code = exc.code
    kind = classify_twilio(exc.status, code)
    label = str(code) if code is not None else f"http_{exc.status}"
    retry_after = retry_after_seconds(http.last_headers().get("Retry-After"))
    return error_for(kind, label, str(exc.msg)[:500], retry_after, exc.status)
