"""Reading the JSON arguments of control calls; a bad one is the caller's 400."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox.server.protocol import Request

# Cap long-polls so a forgotten client can't pin a server thread forever.
MAX_WAIT_S = 300.0


class BadRequest(ValueError):
    """A control call with a malformed body: answered 400 with the text."""


def body(req: Request) -> Mapping[str, Any]:
    try:
        value = req.json()
    except ValueError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from None
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadRequest("body must be a JSON object")
    return value


def wait_params(params: Mapping[str, str], default_timeout: float) -> tuple[int, float]:
    """A listing's long-poll: how many entries to wait for (0: answer at once), how long."""
    try:
        count = int(params.get("wait_for", "0"))
        timeout = min(float(params.get("timeout", str(default_timeout))), MAX_WAIT_S)
    except ValueError:
        raise BadRequest("wait_for/timeout must be numbers") from None
    return count, timeout


def opt_number(spec: Mapping[str, Any], key: str) -> float | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{key!r} must be a number or null")
    return float(value)


def opt_int(spec: Mapping[str, Any], key: str) -> int | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{key!r} must be an integer or null")
    return value


def opt_str(spec: Mapping[str, Any], key: str) -> str | None:
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{key!r} must be a string or null")
    return value


def mapping(spec: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = spec.get(key) or {}
    if not isinstance(value, Mapping):
        raise BadRequest(f"{key!r} must be an object")
    return value
