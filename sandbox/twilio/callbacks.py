"""Message status callbacks: the POSTs Twilio makes to a message's StatusCallback URL.

Sent (in order, in the background) when a message created with StatusCallback becomes
`sent`, then `delivered`, `undelivered` or `failed` (the last two with ErrorCode). Each is
signed with the account's auth token, which the emulator takes from, in order: the token
it was told to sign with (Sandbox(webhook_auth_token=...)), the credentials it enforces
(twilio_auth), the Basic-auth password of the create request when its user is an Account
SID (an API key's secret is not the auth token), else DEFAULT_AUTH_TOKEN.

`send()` posts a callback on demand, for what real Twilio also does now and then: the
same callback twice (same idempotency token), callbacks out of order (delivered before
sent), and requests that only claim to be from Twilio (a forged or missing signature).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sandbox.control.specs import StatusCallbackSpec
from sandbox.server.records import RecordedMessage, Recorder
from sandbox.twilio.lifecycle import OUTCOME_CODES
from sandbox.twilio.webhooks import (
    DEFAULT_AUTH_TOKEN,
    WebhookDelivery,
    Webhooks,
    new_idempotency_token,
)

# The statuses Twilio reports to a StatusCallback for an SMS sent from a number.
CALLBACK_STATUSES = frozenset({"sent", "delivered", "undelivered", "failed"})


class StatusCallbacks:
    def __init__(
        self,
        recorder: Recorder,
        webhooks: Webhooks,
        twilio_auth: tuple[str, str] | None = None,
        auth_token: str | None = None,
    ) -> None:
        self._recorder = recorder
        self._webhooks = webhooks
        self._twilio_auth = twilio_auth
        self._default_auth_token = auth_token
        self.auth_token = auth_token  # settable: the token to sign with, over all others
        self._lock = threading.Lock()
        # sid -> auth token of the create request; kept until reset, for on-demand sends.
        self._tokens: dict[str, str] = {}

    def signing_token(self, request_token: str | None = None) -> str:
        if self.auth_token:
            return self.auth_token
        if self._twilio_auth is not None:
            return self._twilio_auth[1]
        return request_token or DEFAULT_AUTH_TOKEN

    def created(self, sid: str, basic_auth: tuple[str, str] | None) -> None:
        """Remember whose auth token signs this message's callbacks."""
        if basic_auth is not None and basic_auth[0].startswith("AC") and basic_auth[1]:
            with self._lock:
                self._tokens[sid] = basic_auth[1]

    def on_status(self, message: RecordedMessage) -> None:
        """Outbox listener: queue the callback for this status change, if one is due."""
        url = message.payload.get("StatusCallback")
        status = message.status or ""
        if not url or status not in CALLBACK_STATUSES:
            return
        with self._lock:
            request_token = self._tokens.get(message.id)
        params = status_params(message.response, status)
        self._webhooks.deliver_later("status", url, params, self.signing_token(request_token))

    def send(self, spec: StatusCallbackSpec) -> list[WebhookDelivery]:
        """Post the callback `spec` describes now, as a retry or a forger would."""
        sid = spec.sid
        message = self._recorder.find(sid)
        if message is None or message.channel != "sms":
            raise ValueError(f"no SMS {sid}")
        target = spec.url or message.payload.get("StatusCallback")
        if not target:
            raise ValueError(f"{sid} has no StatusCallback; give a url")
        status = spec.status or message.status or ""
        params = status_params(message.response, status, spec.error_code)
        with self._lock:
            token = self.signing_token(self._tokens.get(sid))
        once = spec.idempotency_token or new_idempotency_token()
        return [
            self._webhooks.deliver(
                "status", target, params, token, signature=spec.signature, idempotency_token=once
            )
            for _ in range(spec.repeat)
        ]

    def reset(self) -> None:
        self.auth_token = self._default_auth_token
        with self._lock:
            self._tokens.clear()


def status_params(
    resource: Mapping[str, Any], status: str, error_code: int | None = None
) -> dict[str, str]:
    """The form Twilio posts to a StatusCallback for `resource` at `status`."""
    sid = str(resource["sid"])
    params = {
        "AccountSid": str(resource["account_sid"]),
        "ApiVersion": str(resource.get("api_version") or "2010-04-01"),
        "MessageSid": sid,
        "MessageStatus": status,
        "SmsSid": sid,
        "SmsStatus": status,
        "To": str(resource["to"]),
    }
    if resource.get("from"):
        params["From"] = str(resource["from"])
    if resource.get("messaging_service_sid"):
        params["MessagingServiceSid"] = str(resource["messaging_service_sid"])
    if status in ("undelivered", "failed"):
        code = error_code or resource.get("error_code") or OUTCOME_CODES[status]
        params["ErrorCode"] = str(code)
    elif error_code is not None:
        params["ErrorCode"] = str(error_code)
    if status in ("delivered", "undelivered"):
        # The carrier's delivery report time, YYMMDDhhmm, as Twilio passes it on for SMS.
        params["RawDlrDoneDate"] = datetime.fromtimestamp(time.time(), UTC).strftime("%y%m%d%H%M")
    return params
