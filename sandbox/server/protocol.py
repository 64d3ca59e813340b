"""Plain request/reply values passed between the HTTP handler and routes."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def form(self) -> dict[str, str]:
        """Form fields of the body; the first value wins like Twilio's API."""
        fields = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[0] for k, v in fields.items()}

    def params(self) -> dict[str, str]:
        fields = parse_qs(self.query, keep_blank_values=True)
        return {k: v[0] for k, v in fields.items()}

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = field(default=())
    # Connection faults (sandbox.control.faults): "drop" (close, no answer), "reset" (RST),
    # "timeout" (answer after delay_s).
    action: str | None = None
    delay_s: float = 0.0
    # Run by the handler with its own socket just before the reply is written.
    before_write: Callable[[socket.socket], None] | None = None

    def with_connection_fault(self, action: str | None, delay_s: float | None) -> Reply:
        if action is None:
            return self
        return replace(self, action=action, delay_s=delay_s or 0.0)


def json_reply(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Reply(status=status, body=body, headers=headers)


def retry_after(seconds: int | None) -> tuple[tuple[str, str], ...]:
    return () if seconds is None else (("Retry-After", str(seconds)),)
