"""The arguments of the control calls that take many: one Struct each, written once.

The same value in process (`Sandbox`) and over HTTP (`SandboxClient` sends it as the JSON
body, the control API decodes it back with the same checks). `ControlCalls` gives both
handles the keyword forms callers know (`send_inbound(url, from_, to, body, ...)`) as thin
wrappers over the spec-taking methods each handle implements.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import msgspec

from sandbox.twilio.optouts import OPT_OUT_TYPES
from sandbox.twilio.webhooks import WebhookDelivery


class InboundSpec(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    omit_defaults=True,
    rename={"from_": "from"},
):
    """An incoming SMS from `from_` to the app's number `to`, POSTed to `url`.

    `opt_out_type` is sent as OptOutType (and applied as that keyword's kind); with
    `advanced_opt_out` a STOP/START/HELP body's kind is sent too. `auth_token` signs it
    instead of the emulator's choice; `signature` is valid, forged or missing."""

    url: str
    from_: str
    to: str
    body: str = ""
    opt_out_type: str | None = None
    advanced_opt_out: bool = False
    signature: str = "valid"
    auth_token: str | None = None
    account_sid: str | None = None
    messaging_service_sid: str | None = None

    def __post_init__(self) -> None:
        if not (self.url and self.from_ and self.to):
            raise ValueError("'url', 'from' and 'to' are required")
        if self.opt_out_type is not None and self.opt_out_type not in OPT_OUT_TYPES:
            raise ValueError(
                f"opt_out_type must be one of {OPT_OUT_TYPES}, got {self.opt_out_type!r}"
            )


class StatusCallbackSpec(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True
):
    """A status callback for SMS `sid` now: `status` (default: its current one) to `url`
    (default: its StatusCallback), `repeat` times with one idempotency token."""

    sid: str
    status: str | None = None
    url: str | None = None
    error_code: int | None = None
    signature: str = "valid"
    repeat: int = 1
    idempotency_token: str | None = None

    def __post_init__(self) -> None:
        if not self.sid:
            raise ValueError("'sid' is required")
        if self.repeat < 1:
            raise ValueError("repeat must be >= 1")


class ControlCalls(ABC):
    """The keyword forms of the spec-taking control calls, shared by both handles."""

    @abstractmethod
    def deliver_inbound(self, spec: InboundSpec) -> WebhookDelivery:
        """POST a signed incoming SMS; STOP/START bodies update opt-outs first."""

    @abstractmethod
    def deliver_status_callback(self, spec: StatusCallbackSpec) -> list[WebhookDelivery]:
        """POST a status callback now (duplicates, out of order, forged...)."""

    def send_inbound(
        self,
        url: str,
        from_: str,
        to: str,
        body: str,
        *,
        opt_out_type: str | None = None,
        advanced_opt_out: bool = False,
        signature: str = "valid",
        auth_token: str | None = None,
        account_sid: str | None = None,
        messaging_service_sid: str | None = None,
    ) -> WebhookDelivery:
        """deliver_inbound(InboundSpec(...)), for callers that pass keywords."""
        return self.deliver_inbound(
            InboundSpec(
                url=url,
                from_=from_,
                to=to,
                body=body,
                opt_out_type=opt_out_type,
                advanced_opt_out=advanced_opt_out,
                signature=signature,
                auth_token=auth_token,
                account_sid=account_sid,
                messaging_service_sid=messaging_service_sid,
            )
        )

    def send_status_callback(
        self,
        sid: str,
        status: str | None = None,
        *,
        url: str | None = None,
        error_code: int | None = None,
        signature: str = "valid",
        repeat: int = 1,
        idempotency_token: str | None = None,
    ) -> list[WebhookDelivery]:
        """deliver_status_callback(StatusCallbackSpec(...)), for callers that pass keywords."""
        return self.deliver_status_callback(
            StatusCallbackSpec(
                sid=sid,
                status=status,
                url=url,
                error_code=error_code,
                signature=signature,
                repeat=repeat,
                idempotency_token=idempotency_token,
            )
        )
