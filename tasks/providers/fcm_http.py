"""The transport under firebase-admin: one adapter, whatever FCM_API_URL points at.

firebase-admin mounts urllib3's Retry(connect=1, read=1, status=4 on 500/503, any method)
on its session. A read retry resends a push whose answer was lost (two reach the phone and
the send reports success), and status retries hide 503s from our backoff. So the session
gets this adapter instead, for the real FCM and for an emulator alike (tests mount what
production mounts): only a failed connect, which proves nothing left, is tried again;
everything after the request went out is ours to decide (tasks.delivery).
"""

from __future__ import annotations

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from schemas import AmbiguousDeliveryError, TransientDeliveryError

# read=False re-raises a read timeout or a broken answer as itself (requests then raises
# ReadTimeout / ConnectionError(ProtocolError)), so a lost answer is never resent here.
RETRIES = Retry(
    total=None, connect=1, read=False, status=0, other=0, redirect=0,
    status_forcelist=(), allowed_methods=None, raise_on_status=False,
)  # fmt: skip


def adapter(pool_size: int) -> HTTPAdapter:
    return HTTPAdapter(pool_connections=8, pool_maxsize=pool_size, max_retries=RETRIES)


def mount(session: requests.Session, base_url: str, pool_size: int) -> HTTPAdapter:
    """Replace every adapter the SDK mounted (both schemes, and its own for
    https://fcm.googleapis.com, which wins by prefix) with ours; returns it."""
    ours = adapter(pool_size)
    for prefix in {*session.adapters, "https://", "http://", base_url}:
        session.mount(prefix, ours)
    return ours


def transport_error(error: requests.RequestException) -> TransientDeliveryError:
    """A requests failure split by whether the push can have reached FCM.

    Only a failed connect proves it did not (`unreachable`, safe to send again); a read
    timeout or a connection broken after sending is ambiguous, as for SMS.
    """
    text = f"{type(error).__name__}: {str(error).split('?', 1)[0][:300]}"
    if isinstance(error, requests.exceptions.ConnectTimeout) or _never_connected(error):
        return TransientDeliveryError("unreachable", text)
    if isinstance(error, requests.exceptions.Timeout):
        return AmbiguousDeliveryError("timeout", text)
    return AmbiguousDeliveryError("connection_error", text)


def _never_connected(error: requests.RequestException) -> bool:
    reason = error.args[0] if error.args else None
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        reason = reason.reason
    # NewConnectionError (refused, DNS) is a ConnectTimeoutError in urllib3 2.
    return isinstance(reason, urllib3.exceptions.ConnectTimeoutError)
