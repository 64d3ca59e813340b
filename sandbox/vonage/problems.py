"""Vonage's error answers: RFC 7807 problem documents, as developer.vonage.com/api-errors
and its Messages API page list them (`type` ends in the code after `#`)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sandbox.server.protocol import Reply

BASE = "https://developer.vonage.com/api-errors"
CONTENT_TYPE = "application/problem+json"

# name -> (HTTP status, type, title, detail)
PROBLEMS: dict[str, tuple[int, str, str, str]] = {
    "unauthorized": (
        401, f"{BASE}#unauthorized", "Unauthorized", "You did not provide correct credentials."
    ),
    "low-balance": (
        402, f"{BASE}#low-balance", "Low balance",
        "This request could not be performed due to your account balance being low.",
    ),
    "invalid-params": (
        422, f"{BASE}/messages#1150", "Invalid params",
        "The value of one or more parameters is invalid.",
    ),
    "throttled": (
        429, f"{BASE}#throttled", "Rate Limit Hit", "Please wait, then retry your request"
    ),
    "internal": (
        500, f"{BASE}/messages#1030", "Internal error",
        "There was an error processing your request in the Platform.",
    ),
    "unavailable": (
        503, f"{BASE}#service-unavailable", "Service Unavailable",
        "The service is temporarily unavailable.",
    ),
}  # fmt: skip
# A status alone picks the problem Vonage answers with it.
BY_STATUS = {status: name for name, (status, *_) in PROBLEMS.items()}


def problem_reply(
    name: str,
    invalid_parameters: list[dict[str, str]] | None = None,
    retry_after: int | None = None,
) -> Reply:
    status, kind, title, detail = PROBLEMS[name]
    body: dict[str, Any] = {
        "type": kind, "title": title, "detail": detail, "instance": str(uuid.uuid4())
    }  # fmt: skip
    if invalid_parameters:
        body["invalid_parameters"] = invalid_parameters
    headers = (("Retry-After", str(retry_after)),) if retry_after is not None else ()
    return Reply(
        status=status,
        body=json.dumps(body, separators=(",", ":")).encode(),
        content_type=CONTENT_TYPE,
        headers=headers,
    )
