"""Signed requests from "Twilio" to the application: status callbacks, incoming messages.

Signed the way Twilio documents and its SDK checks: X-Twilio-Signature is base64 HMAC-SHA1,
keyed with the account's auth token, over the URL exactly as given plus each POST parameter
name and value, sorted by name (twilio.request_validator.RequestValidator). Every delivery,
answered or not, is kept in a log that tests can read and wait on.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, cast
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

# What the emulator signs with when nothing better is known (see Sandbox docs).
DEFAULT_AUTH_TOKEN = "sandbox-auth-token"
# valid: signed with the auth token; forged: signed with another key; missing: no header.
SIGNATURES = ("valid", "forged", "missing")
_MAX_BODY = 64 * 1024  # of an answer kept in the log


@dataclass(frozen=True)
class WebhookDelivery:
    """One request the emulator made to the application, and what it answered."""

    kind: str  # "status" (callback) or "inbound" (incoming message)
    url: str
    params: dict[str, str]
    signature: str | None  # the X-Twilio-Signature sent; None when left out
    signature_mode: str  # one of SIGNATURES
    idempotency_token: str | None  # I-Twilio-Idempotency-Token; repeats share it
    status: int | None  # the application's HTTP status; None when it did not answer
    body: str = ""
    error: str | None = None  # why there was no answer
    sent_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> WebhookDelivery:
        return cls(**raw)


def sign(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """Twilio's X-Twilio-Signature for a form POST of `params` to `url`."""
    return cast(str, RequestValidator(auth_token).compute_signature(url, dict(params)))


class Webhooks:
    """Sends signed form POSTs, now or in the background (in order), and logs each."""

    def __init__(self, timeout_s: float = 5.0) -> None:
        self.timeout_s = timeout_s
        self._cond = threading.Condition()
        self._log: list[WebhookDelivery] = []
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        # Never route the emulator's own webhook calls through an http_proxy from the env.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def deliver(
        self,
        kind: str,
        url: str,
        params: Mapping[str, str],
        auth_token: str,
        *,
        signature: str = "valid",
        idempotency_token: str | None = None,
    ) -> WebhookDelivery:
        """POST now and return the application's answer."""
        if signature not in SIGNATURES:
            raise ValueError(f"signature must be one of {SIGNATURES}, got {signature!r}")
        headers = {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "User-Agent": "TwilioProxy/1.1",
        }
        signed = None
        if signature != "missing":
            key = auth_token if signature == "valid" else f"forged-{auth_token}"
            signed = headers["X-Twilio-Signature"] = sign(key, url, params)
        if idempotency_token is not None:
            headers["I-Twilio-Idempotency-Token"] = idempotency_token
        status, body, error = self._post(url, urlencode(params).encode(), headers)
        delivery = WebhookDelivery(
            kind, url, dict(params), signed, signature, idempotency_token, status, body, error
        )
        with self._cond:
            self._log.append(delivery)
            self._cond.notify_all()
        return delivery

    def deliver_later(
        self, kind: str, url: str, params: Mapping[str, str], auth_token: str
    ) -> None:
        """Queue a POST; one sender thread keeps them in order (sent before delivered)."""
        token = new_idempotency_token()
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="sandbox-webhooks")
            self._pool.submit(self.deliver, kind, url, params, auth_token, idempotency_token=token)

    def deliveries(self, kind: str | None = None) -> list[WebhookDelivery]:
        with self._cond:
            return [d for d in self._log if kind in (None, d.kind)]

    def wait_for(
        self, count: int, timeout: float, kind: str | None = None
    ) -> list[WebhookDelivery]:
        """Block until `count` deliveries (of `kind`) were made; TimeoutError otherwise."""

        def found() -> list[WebhookDelivery]:
            return [d for d in self._log if kind in (None, d.kind)]

        with self._cond:
            if not self._cond.wait_for(lambda: len(found()) >= count, timeout):
                got = len(found())
                raise TimeoutError(f"expected {count} webhook(s) in {timeout}s, got {got}")
            return found()

    def reset(self) -> None:
        with self._cond:
            self._log.clear()
            self._cond.notify_all()

    def stop(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def _post(
        self, url: str, data: bytes, headers: dict[str, str]
    ) -> tuple[int | None, str, str | None]:
        request = urllib.request.Request(url, data=data, method="POST", headers=headers)
        try:
            with self._opener.open(request, timeout=self.timeout_s) as resp:
                return resp.status, _text(resp.read(_MAX_BODY)), None
        except urllib.error.HTTPError as exc:
            return exc.code, _text(exc.read(_MAX_BODY)), None
        except (OSError, ValueError) as exc:  # refused, timed out, bad URL
            return None, "", f"{type(exc).__name__}: {exc}"


def new_idempotency_token() -> str:
    return str(uuid.uuid4())


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")
