"""Everything the routes share; one instance per running sandbox."""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Protocol

from sandbox.control.script import Script
from sandbox.google.tokens import TokenStore
from sandbox.server.records import Recorder
from sandbox.twilio.callbacks import StatusCallbacks
from sandbox.twilio.optouts import OptOuts
from sandbox.twilio.outbox import Outbox
from sandbox.twilio.webhooks import Webhooks


class Listener(Protocol):
    """The running server, as far as control calls may steer it."""

    def refuse_for(self, seconds: float, keep: socket.socket | None = None) -> None: ...


class State:
    def __init__(
        self,
        script: Script | None = None,
        twilio_auth: tuple[str, str] | None = None,
        *,
        sms_rate: float | None = None,
        delivery_delay_s: float = 0.0,
        webhook_auth_token: str | None = None,
        opted_out: Iterable[str] = (),
    ) -> None:
        self.script = script or Script()
        self.recorder = Recorder()
        # Kept across reset() so SDK clients' cached tokens stay valid.
        self.tokens = TokenStore()
        # (account sid, auth token) to enforce; None accepts any Basic auth.
        self.twilio_auth = twilio_auth
        # Numbers Twilio refuses to text (21610): STOP adds, START removes.
        self.optouts = OptOuts(opted_out)
        self.outbox = Outbox(
            self.recorder, rate=sms_rate, delivery_delay_s=delivery_delay_s,
            opted_out=self.optouts.__contains__,
        )  # fmt: skip
        self.listener: Listener | None = None  # set while the server runs
        self.webhooks = Webhooks()
        self.callbacks = StatusCallbacks(
            self.recorder, self.webhooks, twilio_auth, webhook_auth_token
        )
        self.outbox.add_listener(self.callbacks.on_status)

    def reset(self) -> None:
        self.outbox.reset()
        self.script.reset()
        self.recorder.reset()
        self.callbacks.reset()
        self.webhooks.reset()
        self.optouts.reset()

    def stop(self) -> None:
        """Stop background work (lifecycles, webhooks); a later request restarts it."""
        self.outbox.stop()
        self.webhooks.stop()
