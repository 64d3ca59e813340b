"""`notify rules diff --since` against a real stream: read-only, windowed, dead letters named."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import REDIS_URL
from tests.integration.helpers import RULES, notify, shipment

pytestmark = pytest.mark.integration

Diff = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def stream(redis_client: redis.Redis) -> Iterator[str]:
    """A unique stream with events from now, one from two hours ago, and one broken entry."""
    name = f"test-rules-diff-{uuid.uuid4().hex[:8]}"
    two_hours_ago = int(time.time() * 1000) - 2 * 3600 * 1000
    old = {"id": "evt-old", "type": "shipment.delayed", "data": json.dumps(shipment(9))}
    redis_client.xadd(name, old, id=f"{two_hours_ago}-0")  # type: ignore[arg-type]
    for n in (1, 2):
        fields = {"id": f"evt-{n}", "type": "shipment.delayed", "data": json.dumps(shipment(n))}
        redis_client.xadd(name, fields)  # type: ignore[arg-type]
    redis_client.xadd(name, {"id": "evt-broken", "type": "shipment.delayed"})
    redis_client.xadd(name, {"id": "evt-other", "type": "order.placed", "data": "{}"})
    yield name
    redis_client.delete(name, f"{name}.dlq")


@pytest.fixture
def diff(stream: str, tmp_path: Path) -> Diff:
    """diff(new rules text, *flags): the installed `notify rules diff` on the test stream."""

    def run(new: str, *flags: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / "old.yaml").write_text(RULES)
        (tmp_path / "new.yaml").write_text(new)
        env = {**os.environ, "REDIS_URL": REDIS_URL, "NOTIFY_STREAM": stream}
        args = ["rules", "diff", str(tmp_path / "old.yaml"), str(tmp_path / "new.yaml")]
        return notify(env, *args, *flags)

    return run


def report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    by_rule = {r["rule"]: r for r in json.loads(result.stdout)["by_rule"]}
    return {"code": result.returncode, **json.loads(result.stdout), "by": by_rule}


def test_identical_files_exit_0_and_the_stream_is_left_as_it_was(
    diff: Diff, stream: str, redis_client: redis.Redis
) -> None:
    before = redis_client.xrange(stream)
    got = report(diff(RULES, "--since", "1h", "--json"))
    assert got["code"] == 0
    # evt-old is outside the hour; evt-broken would be dead-lettered; evt-other matches nothing.
    assert got["events"] == {"read": 3, "routed": 0, "unmatched": 1, "dead_letters": 1}
    assert got["dead_letters"]["by_reason"] == {"missing_field": 1}
    assert got["dead_letters"]["examples"][0]["detail"] == (
        "required field 'data' is missing or empty"
    )
    assert redis_client.xrange(stream) == before
    assert redis_client.xinfo_groups(stream) == []
    assert not redis_client.exists(f"{stream}.dlq")


def test_a_wider_window_reads_older_entries(diff: Diff) -> None:
    assert report(diff(RULES, "--since", "3h", "--json"))["events"]["read"] == 4


def test_changed_body_added_and_removed_rules(diff: Diff) -> None:
    new = RULES.replace("min late.", "minutes late.").replace("name: delay-push", "name: push-v2")
    result = diff(new, "--since", "1h")
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert "rules: 1 changed, 1 added, 1 removed, 0 unchanged" in out
    assert "is 45 min late." not in out and "is 45 [-min-]{+minutes+} late." in out
    assert "push-v2 (added): 2 appeared" in out
    assert "delay-push (removed): 2 disappeared" in out
    assert "dead letters (the consumer would dead-letter these): missing_field 1" in out
    assert "missing_field: required field 'data' is missing or empty" in out

    got = report(diff(new, "--since", "1h", "--json"))
    assert got["code"] == 1
    assert (
        got["by"]["delay-sms"]["changed"],
        got["by"]["push-v2"]["appeared"],
        got["by"]["delay-push"]["disappeared"],
    ) == (2, 2, 2)
    assert got["differences"] == 6


def test_a_broken_new_file_exits_2_with_file_line_col(diff: Diff, tmp_path: Path) -> None:
    result = diff(RULES.replace("channel: push", "channel: fax"), "--since", "1h")
    assert result.returncode == 2
    new = tmp_path / "new.yaml"
    assert result.stderr.splitlines() == [
        f"{new}:13:14: unknown channel 'fax': use sms or push",
        f"{new}:15:5: 'title' is only allowed on push rules",
    ]
    assert result.stdout == ""


def test_an_unreachable_redis_exits_2(stream: str, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0", "NOTIFY_STREAM": stream}
    rules = str(tmp_path / "rules.yaml")
    result = notify(env, "rules", "diff", rules, rules)
    assert result.returncode == 2
    assert f"cannot read stream {stream!r}" in result.stderr


def test_the_window_is_read_in_pages_without_gaps_or_repeats(
    stream: str, redis_client: redis.Redis
) -> None:
    from datetime import UTC, datetime, timedelta

    from rules.tools.diff import Undecodable
    from rules.tools.diff_events import stream_window

    items = list(
        stream_window(
            redis_client,
            stream,
            since=timedelta(hours=3),
            now=datetime.now(UTC),
            max_bytes=65536,
            page=2,
        )
    )
    ids = [i.where if isinstance(i, Undecodable) else i.id for i in items]
    assert ids[0] == "evt-old" and ids[1:3] == ["evt-1", "evt-2"] and ids[4] == "evt-other"
    assert isinstance(items[3], Undecodable) and items[3].reason == "missing_field"
    assert len(ids) == len(set(ids)) == 5


def test_a_curly_quote_switches_gsm7_to_ucs2_and_the_segments_it_adds_are_shown(
    diff: Diff,
) -> None:
    # The shared rule's body, with "min late." made "min late \u2014 we\u2019re sorry."
    # and long enough that UCS-2 needs two segments where GSM-7 needed one.
    new = RULES.replace(
        "is {{ data.delay_minutes }} min late.",
        "is {{ data.delay_minutes }} min late \u2014 we\u2019re sorry for the wait.",
    )
    assert new != RULES
    got = report(diff(new, "--since", "1h", "--json"))
    assert got["code"] == 1
    sms = got["by"]["delay-sms"]
    assert sms["segments"] == {"old": 2, "new": 4, "added": 2}  # evt-1 and evt-2: 1 -> 2 each
    assert sms["encoding_changes"] == 2
    assert [(e["event_id"], e["from"], e["to"], e["characters"]) for e in sms["encoding_examples"]]\
        == [(f"evt-{n}", "GSM-7", "UCS-2", ["\u2014", "\u2019"]) for n in (1, 2)]  # fmt: skip

    text = diff(new, "--since", "1h")
    assert text.returncode == 1
    assert "segments: 2 -> 4 (+2) over these events" in text.stdout
    assert "encoding: GSM-7 -> UCS-2, 1 -> 2 segments, because of '\u2014' (U+2014)" in text.stdout
