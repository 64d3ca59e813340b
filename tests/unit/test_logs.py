"""Structured logs: JSON off a terminal, numbers masked everywhere, fields kept."""

from __future__ import annotations

import io
import json

from notify import logs
from notify.logs import mask
from sandbox.google.identifiers import registration_token


def test_json_lines_with_fields_and_masked_numbers(captured: io.StringIO) -> None:
    logs.get("test").warning(
        "sending to +14155550100 failed",
        extra=logs.fields(event_id="e1", rule="r", error="The 'To' number +14155550100 is bad",
                          recipient=mask("tok-abcdefghij"), skipped=None),
    )  # fmt: skip
    line = json.loads(captured.getvalue())
    assert line["msg"] == "sending to +1415*****00 failed"
    assert line["error"] == "The 'To' number +1415*****00 is bad"
    assert (line["level"], line["logger"], line["event_id"], line["rule"]) == (
        "warning",
        "notify.test",
        "e1",
        "r",
    )
    assert line["recipient"] == "tok-a*******ij" and "skipped" not in line
    assert "14155550100" not in captured.getvalue()


def test_the_level_comes_from_configuration(captured: io.StringIO) -> None:
    logs.configure("WARNING", captured)
    logs.get("test").info("quiet")
    assert captured.getvalue() == ""


def test_mask_keeps_only_the_ends() -> None:
    assert mask("+14155550100") == "+1415*****00"
    assert mask("short") == "*****"
    token = registration_token("ann-phone")  # 163 characters
    assert mask(token) == token[:5] + "********" + token[-2:]
