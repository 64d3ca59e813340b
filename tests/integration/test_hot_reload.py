"""Hot reload in a running consumer: valid edits swap in, broken ones are refused and logged."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from sandbox import Sandbox
from tests.integration import processes
from tests.integration.helpers import notify, publish, rows, shipment

pytestmark = pytest.mark.integration

RULES = """
rules:
  - name: delay-sms
    on: shipment.delayed
    channel: sms
    to: "{{ data.customer.phone }}"
    body: "BODY {{ data.shipment_id }}"
"""


def test_valid_versions_swap_in_and_broken_ones_keep_the_last_good(
    start_pipeline: processes.StartPipeline,
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    consumer = start_pipeline(RULES.replace("BODY", "first")).consumer
    path, stream = Path(consumer.env["NOTIFY_RULES"]), consumer.env["NOTIFY_STREAM"]

    def send(n: int) -> str:
        publish(redis_client, stream, f"hr-{stream}-{n}", "shipment.delayed", shipment(n, tokens=0))
        sandbox.wait_for(n, timeout=30)
        return sandbox.messages("sms")[-1].body or ""

    assert send(1) == "first SHP-1"
    path.write_text(RULES.replace("BODY", "second"))
    consumer.wait_for_log("rules reloaded")
    assert send(2) == "second SHP-2"
    v1, v2 = (rows(database_url, "event_id = $1", f"hr-{stream}-{n}")[0]["rules_version"]
              for n in (1, 2))  # fmt: skip
    assert v1 and v2 and v1 != v2

    path.write_text(RULES.replace("BODY", "third").replace("channel: sms", "channel: fax"))
    consumer.wait_for_log("rules file rejected")
    [rejected] = [json.loads(line) for line in consumer.log().splitlines()
                  if "rules file rejected" in line]  # fmt: skip
    check = notify(None, "rules", "check", str(path))
    # The same FILE:LINE:COL lines `notify rules check` prints.
    assert rejected["problems"] == check.stderr.splitlines()
    assert rejected["problems"] == [f"{path}:5:14: unknown channel 'fax': use sms or push"]
    assert send(3) == "second SHP-3"  # the last good rules keep running
    assert rows(database_url, "event_id = $1", f"hr-{stream}-3")[0]["rules_version"] == v2

    # A filter that does not exist, where Jinja itself would only fail on the first event
    # that reaches it (inside an `if`), and where it fails to compile: refused the same way.
    typo = RULES.replace("BODY", "{% if data.x %}{{ data.x | humanise_minutes }}{% endif %}")
    path.write_text(typo.replace("data.customer.phone", "data.customer.phone | e164"))
    processes.wait_until(lambda: consumer.log().count("rules file rejected") == 2, 30,
                         message="the second rejection")  # fmt: skip
    *_, second = [json.loads(line) for line in consumer.log().splitlines()
                  if "rules file rejected" in line]  # fmt: skip
    assert second["problems"] == [
        f"{path}:6:9: unknown filter 'e164'",
        f"{path}:7:11: unknown filter 'humanise_minutes'; did you mean 'humanize_minutes'?",
    ]
    assert send(4) == "second SHP-4"
    assert "Traceback" not in consumer.log()


def test_a_consumer_started_on_a_broken_file_exits_with_its_positions(
    pipeline_env: dict[str, str], rules_file: Callable[[str], Path]
) -> None:
    path = rules_file(RULES.replace("BODY", "{{ data.shipment_id | humanise_minutes }}"))
    started = notify(pipeline_env, "consume", timeout=120)
    assert started.returncode == 1
    assert started.stderr.splitlines() == [
        f"{path}:7:11: unknown filter 'humanise_minutes'; did you mean 'humanize_minutes'?"
    ]
    assert "Traceback" not in started.stdout + started.stderr
