"""FCM's size limit in a running pipeline: an oversized push fails at routing, FCM never called."""

from __future__ import annotations

import pytest
import redis

from sandbox import Sandbox
from tests.integration import processes
from tests.integration.helpers import publish, push_token, wait_for_rows

pytestmark = pytest.mark.integration

RULES = """
rules:
  - name: note-push
    on: note.added
    channel: push
    to: "{{ data.tokens }}"
    title: "Note"
    body: "{{ data.note }}"
    data:
      note_id: "{{ data.note_id }}"
"""


def test_a_push_over_4096_bytes_fails_without_reaching_fcm(
    start_pipeline: processes.StartPipeline,
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    env = start_pipeline(RULES).env
    stream, big, small = env["NOTIFY_STREAM"], push_token(1), push_token(2)
    note = {"note_id": "N-1", "tokens": [big], "note": "ü" * 2100}  # 4200 bytes of body
    publish(redis_client, stream, f"{stream}-big", "note.added", note)
    publish(redis_client, stream, f"{stream}-small", "note.added",
            {"note_id": "N-2", "tokens": [small], "note": "short"})  # fmt: skip

    [failed] = wait_for_rows(database_url, f"{stream}-big", 1)
    assert (failed["status"], failed["error_code"], failed["attempts"]) == (
        "failed", "message_too_large", 0
    )  # fmt: skip
    assert "4214 bytes" in failed["error_message"]
    [sent] = wait_for_rows(database_url, f"{stream}-small", 1)
    assert sent["status"] == "sent"
    assert [r.recipient for r in sandbox.requests("push")] == [small]
