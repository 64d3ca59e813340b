"""Everything the routes share; one instance per running sandbox."""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.records import Recorder
from sandbox.script import Script
from sandbox.tokens import TokenStore


@dataclass
class State:
    script: Script = field(default_factory=Script)
    recorder: Recorder = field(default_factory=Recorder)
    # Kept across reset() so SDK clients' cached tokens stay valid.
    tokens: TokenStore = field(default_factory=TokenStore)
    # (account sid, auth token) to enforce; None accepts any Basic auth.
    twilio_auth: tuple[str, str] | None = None

    def reset(self) -> None:
        self.script.reset()
        self.recorder.reset()
