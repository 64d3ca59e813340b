"""Structured logs: JSON lines when not on a TTY, readable key=value otherwise."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

_PHONE = re.compile(r"\+\d{6,15}")


def mask(value: Any) -> str:
    """The one masking function for recipients (numbers, push tokens): +1415*****00."""
    text = str(value)
    if len(text) <= 7:
        return "*" * len(text)
    # At most 8 stars: a registration token is 150-200 characters, which would otherwise
    # fill a log line or a table column with stars (and show its length for nothing).
    return text[:5] + "*" * min(len(text) - 7, 8) + text[-2:]


def scrub(text: str) -> str:
    """Mask anything shaped like an E.164 number that slipped into free text."""
    return _PHONE.sub(lambda match: mask(match.group(0)), text)


class _Formatter(logging.Formatter):
    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = {
            k: scrub(v) if isinstance(v, str) else v
            for k, v in getattr(record, "fields", {}).items()
        }
        message = scrub(record.getMessage())
        if record.exc_info:
            fields["exc"] = scrub(self.formatException(record.exc_info))
        if self.as_json:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            doc = {
                "ts": f"{stamp}.{int(record.msecs):03d}Z",
                "level": record.levelname.lower(),
                "logger": record.name,
                "msg": message,
                **fields,
            }
            return json.dumps(doc, default=str)
        extras = " ".join(f"{k}={v}" for k, v in fields.items())
        return f"{record.levelname[0]} {record.name}: {message}" + (f" {extras}" if extras else "")


def configure(level: str = "INFO", stream: Any = None) -> None:
    """Idempotent; JSON unless the stream is a terminal."""
    out = stream or sys.stderr
    handler = logging.StreamHandler(out)
    handler.setFormatter(_Formatter(as_json=not out.isatty()))
    root = logging.getLogger("notify")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def get(name: str) -> logging.Logger:
    return logging.getLogger(f"notify.{name}")


def fields(**values: Any) -> dict[str, Any]:
    """`extra=` payload: logger.info("msg", extra=fields(event_id=..., rule=...))."""
    return {"fields": {k: v for k, v in values.items() if v is not None}}
