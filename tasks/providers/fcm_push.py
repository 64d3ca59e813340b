"""Push through the official firebase-admin SDK (FCM v1), pointed at FCM_API_URL when set."""

from __future__ import annotations

import os
import threading
import warnings

import firebase_admin
import requests
from firebase_admin import credentials, exceptions, messaging
from google.auth import exceptions as auth_exceptions

from notify.settings import Settings
from schemas import ConfigurationError, DeliveryError, PushId, TransientDeliveryError
from tasks.classification import (
    classify_fcm,
    classify_token_refusal,
    error_for,
    retry_after_seconds,
)
from tasks.providers import fcm_http

FCM_BASE = "https://fcm.googleapis.com"
# firebase-admin 7.7 warns on every Message(token=...) ("Message.token is deprecated. Use
# Message.fid instead."), but a registration token is not an installation ID: FCM v1 keeps a
# field for each, and `token` is the one for what getToken() returns. The warning is
# silenced around that one constructor call only. catch_warnings swaps the process-wide
# filter list, so the sender threads take turns through it (building a Message is cheap).
_TOKEN_DEPRECATION = r"Message\.token is deprecated"
_WARNINGS = threading.Lock()
_ERROR_CODES: dict[type[Exception], str] = {
    messaging.UnregisteredError: "UNREGISTERED",
    messaging.SenderIdMismatchError: "SENDER_ID_MISMATCH",
    messaging.QuotaExceededError: "QUOTA_EXCEEDED",
    messaging.ThirdPartyAuthError: "THIRD_PARTY_AUTH_ERROR",
}


class FcmPush:
    """A firebase app per process, built on first use (never at import: Celery forks)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._app: firebase_admin.App | None = None
        self._lock = threading.Lock()

    def app(self) -> firebase_admin.App:
        with self._lock:
            if self._app is None:
                self._app = self._build()
            return self._app

    def _build(self) -> firebase_admin.App:
        s = self.settings
        try:
            cred = credentials.Certificate(s.google_credentials)
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                "config_error", f"cannot load GOOGLE_APPLICATION_CREDENTIALS: {type(exc).__name__}"
            ) from None
        app = firebase_admin.initialize_app(
            cred, {"httpTimeout": s.provider_timeout_seconds}, name=f"notify-{os.getpid()}"
        )
        service = messaging._get_messaging_service(app)
        if s.fcm_api_url != FCM_BASE:
            # firebase-admin has no public option for the FCM host; it is one private attribute.
            service._fcm_url = f"{s.fcm_api_url}/v1/projects/{app.project_id}/messages:send"
        # Whatever the host: the adapter is the same one (tasks.providers.fcm_http).
        fcm_http.mount(service._client.session, s.fcm_api_url, max(8, s.send_concurrency))
        return app

    @staticmethod
    def message(
        target: str,
        title: str | None,
        body: str,
        data: dict[str, str] | None,
        kind: PushId = PushId.TOKEN,
        collapse_id: str | None = None,
    ) -> messaging.Message:
        """A message to a registration token (`token`) or an installation ID (`fid`).

        `collapse_id` (our notification's id) tags the shown notification on Android
        (`tag`) and iOS (`apns-collapse-id`): a resend after a lost answer replaces the
        first in the tray instead of showing twice. FCM itself has no lookup to ask.
        """
        notification = messaging.Notification(title=title, body=body)
        tagged: dict[str, object] = {}
        if collapse_id is not None:
            tagged = {
                "android": messaging.AndroidConfig(
                    notification=messaging.AndroidNotification(tag=collapse_id)
                ),
                "apns": messaging.APNSConfig(headers={"apns-collapse-id": collapse_id}),
            }
        if kind is PushId.FID:
            return messaging.Message(
                fid=target, notification=notification, data=data or None, **tagged
            )
        with _WARNINGS, warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=_TOKEN_DEPRECATION, category=DeprecationWarning
            )
            return messaging.Message(
                token=target, notification=notification, data=data or None, **tagged
            )

    def send(
        self,
        target: str,
        title: str | None,
        body: str,
        data: dict[str, str] | None,
        kind: PushId = PushId.TOKEN,
        collapse_id: str | None = None,
    ) -> str:
        """Return the FCM message name, or raise a DeliveryError subclass.

        One message per call, on the worker's sender threads: `make bench` (fcm part) shows
        `send_each` and `send_each_async` cost more CPU per push, so batches don't use them.
        """
        message = self.message(target, title, body, data, kind, collapse_id)
        try:
            return str(messaging.send(message, app=self.app()))
        except exceptions.FirebaseError as exc:
            raise _firebase_error(exc) from None
        except auth_exceptions.RefreshError as exc:
            raise _refresh_error(exc) from None
        except auth_exceptions.TransportError as exc:
            # The token request failed on the wire: the push itself never went out.
            raise TransientDeliveryError("auth_unavailable", str(exc)[:300]) from None

    def close(self) -> None:
        with self._lock:
            if self._app is not None:
                firebase_admin.delete_app(self._app)
                self._app = None


def _firebase_error(exc: exceptions.FirebaseError) -> DeliveryError:
    if exc.http_response is None and isinstance(exc.cause, requests.RequestException):
        return fcm_http.transport_error(exc.cause)
    code = next((c for t, c in _ERROR_CODES.items() if isinstance(exc, t)), str(exc.code))
    response = exc.http_response
    status = response.status_code if response is not None else None
    header = response.headers.get("Retry-After") if response is not None else None
    return error_for(classify_fcm(code, status), code, str(exc)[:500], retry_after_seconds(header))


def _refresh_error(exc: auth_exceptions.RefreshError) -> DeliveryError:
    """google-auth gave up on the token endpoint: an outage, or our key refused."""
    answer = exc.args[1] if len(exc.args) > 1 else None
    kind = classify_token_refusal(exc.retryable, answer)
    return error_for(kind, "auth_error" if kind == "config" else "auth_unavailable",
                     str(exc)[:300])  # fmt: skip
