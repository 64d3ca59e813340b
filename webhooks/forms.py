"""Reading a Twilio request: a bounded body, a strict form. Pure apart from the body read."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

# Twilio's largest form (an inbound SMS with media) is a few KiB.
MAX_BODY_BYTES = 64 * 1024
MAX_FIELDS = 200


class Rejected(Exception):
    """A request we refuse: the HTTP status, and the reason label it is counted under."""

    def __init__(self, status: int, reason: str, detail: str = "") -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.detail = detail


class Disconnected(Exception):
    """The client went away before its body arrived: nobody to answer."""


async def body_chunks(receive: Callable[[], Awaitable[dict[str, Any]]]) -> AsyncIterator[bytes]:
    """An ASGI request's body, as it arrives."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def read_body(
    content_length: str | None, chunks: AsyncIterator[bytes], limit: int = MAX_BODY_BYTES
) -> bytes:
    """The body, or Rejected(413) as soon as it is known to exceed `limit`."""
    if content_length is not None:
        if not content_length.isdigit():
            raise Rejected(400, "malformed", "bad Content-Length")
        if int(content_length) > limit:
            raise Rejected(413, "too_large", f"Content-Length {content_length}")
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise Rejected(413, "too_large", f"body over {limit} bytes")
    return bytes(body)


def parse_form(body: bytes, content_type: str | None) -> dict[str, str]:
    """An application/x-www-form-urlencoded body as a dict, or Rejected(400/415).

    Each name once; values must decode as UTF-8 and hold no NUL (Postgres text cannot).
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        raise Rejected(415, "unsupported_media_type", f"Content-Type {media[:60]!r}")
    try:
        pairs = parse_qsl(
            body.decode("utf-8"),
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise Rejected(400, "malformed", type(exc).__name__) from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise Rejected(400, "malformed", f"field {name[:40]!r} repeated")
        if "\x00" in name or "\x00" in value:
            raise Rejected(400, "malformed", "NUL in a field")
        form[name] = value
    return form
