"""In-process handle on a running sandbox server."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Self

from sandbox.control.faults import Channel, FaultSpec
from sandbox.control.script import Script
from sandbox.control.specs import ControlCalls, InboundSpec, StatusCallbackSpec
from sandbox.server.handler import Server
from sandbox.server.records import Listener, RecordedMessage, RequestRecord
from sandbox.server.state import State
from sandbox.twilio.inbound import send_inbound
from sandbox.twilio.lifecycle import reached
from sandbox.twilio.webhooks import WebhookDelivery


class Sandbox(ControlCalls):
    """Twilio + Google OAuth + FCM emulator on one local port.

    Use as ``with Sandbox() as sb: ...`` or call start()/stop().
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency_ms: float = 0.0,
        twilio_auth: tuple[str, str] | None = None,
        on_message: Listener | None = None,
        sms_rate: float | None = None,
        delivery_delay_s: float = 0.0,
        webhook_auth_token: str | None = None,
        opted_out: Iterable[str] = (),
    ) -> None:
        """`sms_rate`: messages per second each sender drains (None: no limit, 0: hold all
        until released); `delivery_delay_s`: from `sent` to the final status;
        `webhook_auth_token`: sign callbacks and inbound messages with this (else see
        sandbox.twilio.callbacks); `opted_out`: numbers that get 21610 (reset() restores them)."""
        self._address = (host, port)
        self.state = State(
            Script(latency_ms),
            twilio_auth,
            sms_rate=sms_rate,
            delivery_delay_s=delivery_delay_s,
            webhook_auth_token=webhook_auth_token,
            opted_out=opted_out,
        )
        if on_message is not None:
            self.state.recorder.add_listener(on_message)
        self._server: Server | None = None

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError("sandbox already started")
        self._server = Server(self._address, self.state)
        self.state.listener = self._server
        self._server.serve_in_background()
        return self

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        server.stop()
        self.state.stop()
        self.state.listener = None
        self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("sandbox not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:8099 (no trailing slash)."""
        return f"http://{self._address[0]}:{self.port}"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def fcm_url(self, project: str) -> str:
        return f"{self.url}/v1/projects/{project}/messages:send"

    def messages(self, channel: Channel | None = None) -> list[RecordedMessage]:
        return self.state.recorder.messages(channel)

    def requests(self, channel: str | None = None) -> list[RequestRecord]:
        return self.state.recorder.requests(channel)

    def wait_for(
        self, count: int, timeout: float = 5.0, channel: Channel | None = None
    ) -> list[RecordedMessage]:
        """Block until >= count messages were accepted; TimeoutError otherwise."""
        return self.state.recorder.wait_for(count, timeout, channel)

    def reset(self) -> None:
        """Forget messages, requests, webhooks and scripting (faults, rates, delay,
        outcomes, opt-outs back to the constructor's); issued tokens stay valid."""
        self.state.reset()

    def script(self, spec: Mapping[str, Any]) -> None:
        """Apply the JSON script format documented in sandbox.control.script."""
        self.state.script.apply(spec)

    def set_latency(self, ms: float, channel: Channel | None = None) -> None:
        self.state.script.set_latency(ms, channel)

    def queue_errors(self, channel: Channel, errors: Iterable[FaultSpec]) -> None:
        self.state.script.queue_errors(channel, errors)

    def storm(self, channel: Channel, count: int, error: FaultSpec) -> None:
        self.state.script.storm(channel, count, error)

    def fail_recipient(self, recipient: str, error: FaultSpec | None) -> None:
        """Always fail this phone number/token with `error`; None clears it."""
        self.state.script.fail_recipient(recipient, error)

    def fail_sms_reads(self, error: FaultSpec | None) -> None:
        """Answer every Twilio Messages GET (fetch, list) with `error` until cleared (None)."""
        self.state.script.fail_sms_reads(error)

    def set_sms_list(self, lag_s: float = 0.0, queued: str = "first") -> None:
        """The Messages list hides messages younger than `lag_s`; unsent ones list first/last."""
        self.state.script.set_sms_list(lag_s, queued)

    def set_smart_encoding(self, on: bool) -> None:
        """Store SMS bodies with Unicode look-alikes replaced (sandbox.twilio.rewriting)."""
        self.state.script.set_smart_encoding(on)

    def fail_token_requests(self, faults: Iterable[FaultSpec]) -> None:
        """The next Google token requests get these faults, one each (5xx, timeout, 400)."""
        self.state.script.queue_token_faults(faults)

    def refuse_connections(self, seconds: float) -> None:
        """Stop listening for `seconds` (connects refused, open connections closed)."""
        if self._server is None:
            raise RuntimeError("sandbox not started")
        self._server.refuse_for(seconds)

    # --- the SMS lifecycle (sandbox.twilio.outbox) ---

    def set_sms_rate(self, rate: float | None, sender: str | None = None) -> None:
        """Messages per second per sender (one sender when given); None: no limit; 0: hold."""
        self.state.outbox.set_rate(rate, sender)

    def release(self, sender: str | None = None, count: int | None = None) -> int:
        """Send held (rate 0) messages now, oldest first; returns how many."""
        return self.state.outbox.release(sender, count)

    def set_delivery_delay(self, seconds: float) -> None:
        """Time from `sent` to the final status (and its status callback)."""
        self.state.outbox.set_delivery_delay(seconds)

    def set_max_queue(self, seconds: float) -> None:
        """A message still queued this long fails 30001 (its ValidityPeriod, if less: 30036)."""
        self.state.outbox.set_max_queue(seconds)

    def set_price_delay(self, seconds: float) -> None:
        """Time from `sent` to the message's `price` (Twilio prices when the carrier bills)."""
        self.state.outbox.set_price_delay(seconds)

    def set_sms_outcome(
        self, recipient: str, status: str | None, error_code: int | None = None
    ) -> None:
        """Final status for this number: delivered, undelivered or failed; None clears it."""
        self.state.outbox.set_outcome(recipient, status, error_code)

    def wait_for_status(self, sid: str, status: str, timeout: float = 5.0) -> RecordedMessage:
        """Block until SMS `sid` has reached `status` or gone past it; TimeoutError otherwise."""
        return self.state.recorder.wait_for_message(
            sid, lambda m: reached(m.status or "", status), timeout
        )

    # --- webhooks: status callbacks (sandbox.twilio.callbacks) ---

    def set_webhook_auth_token(self, token: str | None) -> None:
        """Sign webhooks with this auth token from now on; None: the default choice."""
        self.state.callbacks.auth_token = token

    def deliver_status_callback(self, spec: StatusCallbackSpec) -> list[WebhookDelivery]:
        """POST a status callback now (duplicates, out of order, forged...)."""
        return self.state.callbacks.send(spec)

    def webhooks(self, kind: str | None = None) -> list[WebhookDelivery]:
        """Every webhook POSTed ("status" or "inbound"), with the application's answer."""
        return self.state.webhooks.deliveries(kind)

    def wait_for_webhooks(
        self, count: int, timeout: float = 5.0, kind: str | None = None
    ) -> list[WebhookDelivery]:
        return self.state.webhooks.wait_for(count, timeout, kind)

    # --- opt-outs and incoming SMS (sandbox.twilio.optouts, sandbox.twilio.inbound) ---

    def opt_out(self, number: str) -> None:
        """Twilio now answers 21610 to SMS for `number`."""
        self.state.optouts.add(number)

    def opt_in(self, number: str) -> None:
        self.state.optouts.remove(number)

    def opted_out(self) -> list[str]:
        return self.state.optouts.numbers()

    def deliver_inbound(self, spec: InboundSpec) -> WebhookDelivery:
        """POST a signed incoming SMS; STOP/START bodies update opt-outs first."""
        return send_inbound(self.state, spec)
