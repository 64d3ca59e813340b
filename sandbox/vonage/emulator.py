"""In-process handle on a Vonage Messages API emulator, on a port of its own.

```python
with VonageSandbox(signature_secret="s3cret", status_url="http://127.0.0.1:8080/...") as v:
    ...  # VONAGE_API_URL=v.url; the vonage SDK's JWTs are accepted
    v.wait_for(1)  # SMS accepted
```
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Self

from sandbox.server.handler import Server
from sandbox.vonage import messages
from sandbox.vonage.callbacks import Callbacks, Delivery, status_body, timestamp
from sandbox.vonage.signing import Signature
from sandbox.vonage.state import Fault, RequestLog, VonageMessage, VonageState


class VonageSandbox:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        signature_secret: str = "sandbox-signature-secret-at-least-32-bytes",
        api_key: str = "abcd1234",
        application_id: str | None = None,
        public_key: str | None = None,
        status_url: str | None = None,
        delivery_delay_s: float = 0.0,
        latency_ms: float = 0.0,
        requests_per_second: float | None = None,
        proxy: str | None = None,
    ) -> None:
        """`public_key`: check the SDK's RS256 JWTs with it (else only their claims);
        `proxy`: where webhooks for a public URL really land (the origin is replaced, as a
        reverse proxy in front of the application would; the path is kept);
        `status_url`: the application's status webhook (a message's `webhook_url` wins);
        `requests_per_second`: the account's throughput limit (429 beyond; None: none)."""
        self._address = (host, port)
        self.state = VonageState(
            signature_secret=signature_secret,
            api_key=api_key,
            application_id=application_id,
            public_key=public_key,
            status_url=status_url,
            delivery_delay_s=delivery_delay_s,
            latency_ms=latency_ms,
            requests_per_second=requests_per_second,
        )
        self.callbacks = Callbacks(self.state, proxy)
        self.state.on_accept = self.callbacks.on_accept
        self._server: Server | None = None

    def start(self) -> Self:
        self._server = Server(self._address, self.state, messages.route)
        self._server.serve_in_background()
        self.callbacks.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        self.callbacks.stop()

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
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("not started")
        return f"http://{self._address[0]}:{self._server.server_address[1]}"

    # --- what it received ---

    def messages(self) -> list[VonageMessage]:
        return self.state.snapshot()

    def requests(self) -> list[RequestLog]:
        with self.state._cond:
            return list(self.state.requests)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[VonageMessage]:
        return self.state.wait_for(count, timeout)

    def webhooks(self, kind: str | None = None) -> list[Delivery]:
        return [d for d in self.callbacks.deliveries if kind in (None, d.kind)]

    def wait_for_webhooks(
        self, count: int, timeout: float = 10.0, kind: str | None = None
    ) -> list[Delivery]:
        return self.callbacks.wait_for(count, timeout, kind)

    # --- steering, per test ---

    def reset(self) -> None:
        """Forget messages, requests, webhooks, faults and modes (back to the constructor's)."""
        self.state.reset()
        self.callbacks.reset()

    def queue_faults(self, faults: Iterable[Mapping[str, Any] | Fault]) -> None:
        """The next creates get these, one each: `{"status": 503}`, `{"problem":
        "low-balance"}`, `{"action": "drop"}`, ..."""
        self.state.queue(faults)

    def set_failing(self, fault: Mapping[str, Any] | Fault | None) -> None:
        """Every create gets `fault` (after queued ones) until None: an outage."""
        self.state.failing = None if fault is None else Fault.of(fault)

    def set_latency(self, ms: float) -> None:
        self.state.latency_ms = ms

    def set_delivery_delay(self, seconds: float) -> None:
        """From acceptance to the final status webhook: slow receipts."""
        self.state.delivery_delay_s = seconds

    def set_outcome(self, to: str, status: str | None, code: str = "1320") -> None:
        """`rejected` or `undeliverable` for a number (E.164 without `+`); None clears."""
        if status is None:
            self.state.outcomes.pop(to, None)
        else:
            self.state.outcomes[to] = (status, code)

    def set_callback_modes(self, *, duplicate: bool = False, reverse: bool = False) -> None:
        """Send each status webhook twice, and/or the final one before `submitted`."""
        self.state.duplicate_callbacks = duplicate
        self.state.reverse_callbacks = reverse

    def set_status_url(self, url: str | None) -> None:
        """The application's status webhook (the dashboard's), for messages without one."""
        self.state.status_url = url

    def set_proxy(self, url: str | None) -> None:
        """Where webhooks for the public URL land from now on (see the constructor)."""
        self.callbacks.proxy = url.rstrip("/") if url else None

    def refuse_connections(self, seconds: float) -> None:
        """Down: connects refused for `seconds`, open connections closed."""
        if self._server is None:
            raise RuntimeError("not started")
        self._server.refuse_for(seconds)

    # --- webhooks on demand ---

    def send_status(
        self,
        url: str,
        message_uuid: str,
        status: str,
        *,
        signature: Signature = "valid",
        error_code: str | None = None,
    ) -> Delivery:
        """POST one status webhook now (for any uuid: late, duplicate, forged, tampered)."""
        found = next((m for m in self.messages() if m.uuid == message_uuid), None)
        message = found or VonageMessage(message_uuid, "447700900000", "447700900001", "", None,
                                         None, 0.0)  # fmt: skip
        error = (error_code, "failed") if error_code else None
        return self.callbacks.send_now(
            url, "status", status_body(message, status, error), signature
        )

    def send_inbound(
        self, url: str, from_: str, to: str, text: str, *, signature: Signature = "valid"
    ) -> Delivery:
        """An inbound SMS as the Messages API posts it (numbers without `+`)."""
        words = text.split()
        body = {
            "channel": "sms",
            "message_uuid": str(uuid.uuid4()),
            "to": to.removeprefix("+"),
            "from": from_.removeprefix("+"),
            "timestamp": timestamp(),
            "text": text,
            "sms": {"num_messages": "1", **({"keyword": words[0].upper()} if words else {})},
            "message_type": "text",
        }
        return self.callbacks.send_now(url, "inbound", body, signature)
