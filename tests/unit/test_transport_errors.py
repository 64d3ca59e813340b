"""A request that never left vs one whose answer was lost: only the second may have been sent."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import urllib3

from notify.settings import Settings
from sandbox import Sandbox
from schemas import AmbiguousDeliveryError, RefusedDeliveryError, TransientDeliveryError
from tasks.providers.twilio_http import (
    ProviderDisconnected,
    ProviderTimeout,
    ProviderUnreachable,
    transport_error,
)
from tasks.providers.twilio_sms import TwilioSms

TO = "+14155550100"


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (urllib3.exceptions.NewConnectionError(None, "refused"), ProviderUnreachable),  # type: ignore[arg-type]
        (urllib3.exceptions.NameResolutionError("api", None, socket.gaierror()),  # type: ignore[arg-type]
         ProviderUnreachable),
        (urllib3.exceptions.ConnectTimeoutError("connect timed out"), ProviderUnreachable),
        (urllib3.exceptions.ReadTimeoutError(None, "/x", "read timed out"), ProviderTimeout),  # type: ignore[arg-type]
        (urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError()),
         ProviderDisconnected),
        (urllib3.exceptions.SSLError("bad record mac"), ProviderDisconnected),
        (urllib3.exceptions.ProxyError("proxy", OSError()), ProviderDisconnected),
    ],
    ids=["refused", "dns", "connect-timeout", "read-timeout", "reset", "tls", "proxy"],
)  # fmt: skip
def test_only_a_failed_connect_proves_the_request_never_left(
    exc: urllib3.exceptions.HTTPError, kind: type[Exception]
) -> None:
    assert type(transport_error(exc)) is kind


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


def twilio(sandbox: Sandbox, timeout: float = 5) -> TwilioSms:
    return TwilioSms(
        Settings(
            twilio_account_sid="AC" + "0" * 32, twilio_auth_token="t",
            twilio_phone_number="+15005550006", twilio_api_url=sandbox.url,
            provider_timeout_seconds=timeout,
        )
    )  # fmt: skip


@pytest.mark.parametrize(
    ("fault", "code"),
    [({"action": "drop"}, "connection_error"), ({"action": "reset"}, "connection_error"),
     ({"action": "timeout", "delay_s": 2}, "timeout")],
)  # fmt: skip
def test_a_lost_answer_is_ambiguous(sandbox: Sandbox, fault: dict[str, object], code: str) -> None:
    sandbox.queue_errors("sms", [fault])
    with pytest.raises(AmbiguousDeliveryError) as info:
        twilio(sandbox, timeout=0.5).send(TO, "hello")
    assert info.value.code == code


def test_a_refused_connection_is_a_refusal_another_provider_may_take(sandbox: Sandbox) -> None:
    sandbox.refuse_connections(2)
    with pytest.raises(TransientDeliveryError) as info:
        twilio(sandbox).send(TO, "hello")
    assert type(info.value) is RefusedDeliveryError and info.value.code == "unreachable"
    assert sandbox.messages("sms") == []
