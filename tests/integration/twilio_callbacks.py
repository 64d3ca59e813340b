"""Playing Twilio against a real `notify webhooks`: requests signed with the SDK's own
RequestValidator, posted over HTTP with a real client."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from twilio.request_validator import RequestValidator

from notify.webhook_paths import INBOUND_PATH, STATUS_CALLBACK_PATH
from tests.integration.helpers import Samples, fetch, scrape
from tests.integration.processes import Process

# Not where the server listens: proves signatures are checked over NOTIFY_PUBLIC_URL, as
# they must be behind a proxy.
PUBLIC_URL = "https://notify.example.test"
AUTH_TOKEN = "test-auth-token"  # harness.launcher.emulator_env's


def new_sid() -> str:
    return "SM" + uuid.uuid4().hex


@dataclass
class TwilioCallbacks:
    base_url: str  # where the process listens
    public_url: str = PUBLIC_URL
    auth_token: str = AUTH_TOKEN
    session: requests.Session = field(default_factory=requests.Session)
    process: Process | None = None

    def sign(self, path: str, params: Mapping[str, str], token: str | None = None) -> str:
        validator = RequestValidator(token or self.auth_token)
        return str(validator.compute_signature(self.public_url + path, dict(params)))

    def post(
        self,
        path: str,
        params: Mapping[str, str],
        *,
        signature: str | None = None,
        headers: Mapping[str, str] | None = None,
        signed: bool = True,
    ) -> requests.Response:
        sent = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        if signed:
            sent["X-Twilio-Signature"] = self.sign(path, params) if signature is None else signature
        return self.session.post(self.base_url + path, data=dict(params), headers=sent, timeout=30)

    def status(
        self,
        sid: str,
        status: str,
        error_code: str | None = None,
        *,
        idempotency_token: str | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """A status callback as Twilio sends one."""
        params = {
            "MessageSid": sid,
            "SmsSid": sid,
            "MessageStatus": status,
            "SmsStatus": status,
            "AccountSid": "AC" + "0" * 32,
            "From": "+15005550006",
            "To": "+14155550100",
            "ApiVersion": "2010-04-01",
        }
        if error_code is not None:
            params["ErrorCode"] = error_code
        headers = {"I-Twilio-Idempotency-Token": idempotency_token or str(uuid.uuid4())}
        return self.post(STATUS_CALLBACK_PATH, params, headers=headers, **kwargs)

    def inbound(self, sid: str, sender: str, body: str, **extra: str) -> requests.Response:
        params = {"MessageSid": sid, "From": sender, "To": "+15005550006", "Body": body, **extra}
        return self.post(INBOUND_PATH, params)

    def metrics(self) -> Samples:
        return scrape(self.base_url + "/metrics")

    def healthz(self) -> int:
        return self.session.get(self.base_url + "/healthz", timeout=10).status_code


def receipts(database_url: str, sid: str) -> list[dict[str, Any]]:
    return fetch(
        database_url,
        "SELECT * FROM notification_receipts WHERE provider_message_id = $1 ORDER BY id",
        sid,
    )


def outbox(database_url: str, notification_id: int) -> list[str]:
    """Outcome ids waiting in the outbox for one row (no relay runs in these tests)."""
    found = fetch(
        database_url,
        "SELECT outcome_id FROM outcome_outbox WHERE outcome_id LIKE $1 ORDER BY id",
        f"{notification_id}-%",
    )
    return [r["outcome_id"] for r in found]
