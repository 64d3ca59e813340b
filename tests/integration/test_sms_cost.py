"""What SMS cost and who may be texted (CONTRACT section 14), on real processes: the country
allowlist, the pumping breaker across two workers, the price backfill from the emulator,
`notify report spend` and the segment backfill of `notify migrate`."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis

from notify.country_breaker import key
from notify.database import ensure_database
from sandbox import Sandbox
from tests.integration import processes
from tests.integration.helpers import fetch, notify, publish_events, rows, wait_for_rows

pytestmark = pytest.mark.integration

RULES = """
rules:
  - name: text
    on: shipment.delayed
    channel: sms
    to: "{{ data.phone }}"
    body: "{{ data.text }}"
"""
GB, US, FR = "+4474001{:05d}", "+1415555{:04d}", "+3361234{:04d}"
CURLY = "Your parcel\u2019s late"  # one curly quote: UCS-2


@pytest.fixture
def countries(redis_client: redis.Redis) -> Iterator[None]:
    """The breaker's keys are per country, not per test: none from an earlier run counts."""
    names = [key(c) for c in ("GB", "US", "FR")]
    redis_client.delete(*names)
    yield
    redis_client.delete(*names)


def outcomes(client: redis.Redis, stream: str) -> list[dict[str, Any]]:
    entries = client.xrange(stream)  # type: ignore[union-attr]
    return [json.loads(raw[b"data"]) for _, raw in entries]


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("countries")
def test_a_burst_to_one_country_is_cut_at_the_limit_while_another_flows(
    start_pipeline: processes.StartPipeline,
    procs: processes.Start,
    sandbox: Sandbox,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    pipeline = start_pipeline(
        RULES, concurrency=2, NOTIFY_SMS_COUNTRIES="us, GB", NOTIFY_SMS_COUNTRY_HOURLY_SEGMENTS="5",
        NOTIFY_TASK_BATCH_SIZE="1",
    )  # fmt: skip
    env = pipeline.env
    # A second worker process: the count is shared through Redis, not per process.
    procs(processes.worker(env, tmp_path, name="worker-2", concurrency=2)).wait_for_log("ready")
    stream = env["NOTIFY_STREAM"]
    texts = [{"phone": GB.format(n), "text": "Your code is 1234"} for n in range(10)]
    texts += [{"phone": US.format(n), "text": CURLY} for n in range(3)]
    texts.append({"phone": FR.format(1), "text": "Bonjour"})
    publish_events(redis_client, stream, "burst", texts)

    found = wait_for_rows(env["DATABASE_URL"], "burst-%", 14, {"sent", "skipped", "failed"})
    by_country = Counter((r["country"], r["status"], r["error_code"]) for r in found)
    assert by_country == {
        ("GB", "sent", None): 5,
        ("GB", "skipped", "country_paused"): 5,
        ("US", "sent", None): 3,
        ("FR", "failed", "country_not_allowed"): 1,
    }
    assert {(r["country"], r["segments"], r["encoding"]) for r in found} == {
        ("GB", 1, "GSM-7"), ("US", 1, "UCS-2"), ("FR", 1, "GSM-7"),
    }  # fmt: skip
    sent = Counter(m.to[:3] for m in sandbox.messages("sms"))
    assert sent == {"+44": 5, "+14": 3}  # nothing to France, five to Britain
    held = [r for r in found if r["status"] == "skipped"]
    assert all(r["attempts"] == 0 for r in held)  # no provider call, no attempt spent
    refused = next(r for r in found if r["country"] == "FR")
    processes.wait_until(
        lambda: any(o["notification_id"] == refused["id"] for o in outcomes(redis_client,
                    env["NOTIFY_OUTCOMES_STREAM"])), timeout=30, message="FR outcome")  # fmt: skip
    mine = [o for o in outcomes(redis_client, env["NOTIFY_OUTCOMES_STREAM"])
            if o["notification_id"] == refused["id"]]  # fmt: skip
    assert [(o["status"], o["error_code"]) for o in mine] == [("failed", "country_not_allowed")]

    # An operator lifts Britain's pause for the rest of the hour: the next ones go out.
    resumed = notify(env, "sms", "resume", "gb")
    assert resumed.returncode == 0, resumed.stderr
    assert "GB: SMS resumed until" in resumed.stdout
    more = [{"phone": GB.format(n), "text": "Your code is 1234"} for n in range(20, 22)]
    publish_events(redis_client, stream, "after", more)
    after = wait_for_rows(env["DATABASE_URL"], "after-%", 2, {"sent", "skipped"})
    assert [r["status"] for r in after] == ["sent", "sent"]


@pytest.mark.timeout(180)
def test_prices_arrive_late_and_are_backfilled_then_reported(
    start_pipeline: processes.StartPipeline,
    procs: processes.Start,
    sandbox: Sandbox,
    redis_client: redis.Redis,
    tmp_path: Path,
    own_database: str,
) -> None:
    # The backfill asks about every unpriced SMS it finds: only this test's, here.
    pipeline = start_pipeline(RULES, NOTIFY_PRICE_LOOKUP_INTERVAL_SECONDS="0.5",
                              NOTIFY_PRICE_LOOKUPS_PER_RUN="2",
                              DATABASE_URL=own_database)  # fmt: skip
    env = pipeline.env
    sandbox.set_price_delay(8)  # Twilio prices a message when the carrier bills it
    procs(processes.beat(env, tmp_path)).wait_for_log("beat: Starting")
    long_gsm = "a" * 161  # two segments
    texts = [
        {"phone": US.format(11), "text": "Short"},
        {"phone": US.format(12), "text": long_gsm},
        {"phone": US.format(13), "text": CURLY * 4},  # 84 UCS-2 units: two segments
    ]
    publish_events(redis_client, env["NOTIFY_STREAM"], "priced", texts)
    wait_for_rows(env["DATABASE_URL"], "priced-%", 3, {"sent"})
    # Beat asks every 0.5 s: before the price exists, Twilio's answer is null.
    processes.wait_until(
        lambda: all(r["price_lookups"] and r["price"] is None
                    for r in rows(env["DATABASE_URL"], "event_id LIKE 'priced-%'")),
        timeout=30, message="a lookup before the price exists",
    )  # fmt: skip

    def priced() -> list[dict[str, Any]]:
        return [r for r in rows(env["DATABASE_URL"], "event_id LIKE 'priced-%'") if r["price"]]

    processes.wait_until(lambda: len(priced()) == 3, timeout=60, message="three prices")
    found = rows(env["DATABASE_URL"], "event_id LIKE 'priced-%'")
    assert [(r["segments"], r["encoding"]) for r in found] == [(1, "GSM-7"), (2, "GSM-7"),
                                                               (2, "UCS-2")]  # fmt: skip
    assert [r["price"] for r in found] == [Decimal("0.00790"), Decimal("0.01580"),
                                          Decimal("0.01580")]  # fmt: skip
    assert {r["price_unit"] for r in found} == {"USD"}
    assert all(r["price_lookups"] >= 2 for r in found)  # asked again, once per interval

    report = notify(env, "report", "spend", "--since", "1h", "--by", "rule", "--json")
    assert report.returncode == 0, report.stderr
    [text_rule] = [r for r in json.loads(report.stdout) if r["rule"] == "text"]
    assert text_rule["messages"] >= 3 and text_rule["segments"] >= 5
    assert Decimal(text_rule["price"]["USD"]) >= Decimal("0.0395")
    by_day = notify(env, "report", "spend", "--by", "day")
    assert by_day.returncode == 0, by_day.stderr
    assert by_day.stdout.splitlines()[0].split()[:3] == ["DAY", "MESSAGES", "SEGMENTS"]
    assert by_day.stdout.splitlines()[-1].startswith("total")


def test_migrate_fills_segments_of_rows_from_before_it(database_url: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                """INSERT INTO notifications (idempotency_key, event_id, event_type, rule,
                       channel, recipient, body, status)
                   VALUES ('old-1', 'old-1', 't', 'r', 'sms', '+447400123456', $1, 'sent'),
                          ('old-2', 'old-2', 't', 'r', 'push', 'tok', 'x', 'sent')""",
                "\u20ac" * 81,
            )
        finally:
            await conn.close()
        await ensure_database(database_url)

    try:
        asyncio.run(run())
        found = fetch(database_url, "SELECT event_id, segments, encoding, country FROM "
                      "notifications WHERE event_id LIKE 'old-%' ORDER BY event_id")  # fmt: skip
        assert found == [
            {"event_id": "old-1", "segments": 2, "encoding": "GSM-7", "country": "GB"},
            {"event_id": "old-2", "segments": None, "encoding": None, "country": None},
        ]
    finally:
        fetch(database_url, "DELETE FROM notifications WHERE event_id LIKE 'old-%' RETURNING id")
