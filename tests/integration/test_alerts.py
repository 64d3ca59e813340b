"""The alert rules in a real Prometheus, scraping a real consumer and a real worker.

Prometheus evaluates a copy of deploy/prometheus/alerts.yml on a clock 60 times faster
(`5m` is `5s`), with the volume thresholds lowered, so each alert can fire within seconds.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import redis

from harness.launcher import free_port, wait_until
from notify.country_breaker import key as country_key
from tests.integration import processes
from tests.integration.helpers import publish, shipment
from tests.integration.prometheus import Prometheus, rules_for_test

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Only volumes change; every duration is divided by 60 in rules_for_test.
THRESHOLDS = {
    "NotifyStreamLagHigh": ("> 1000", "> 20"),
    "NotifyChannelFailureRatioHigh": (">= 20", ">= 2"),
}


def test_lag_dead_letter_and_failure_alerts_fire(
    start_pipeline: processes.StartPipeline,
    procs: processes.Start,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    consumer_port, worker_port = free_port(), free_port()
    pipeline = start_pipeline(
        NOTIFY_METRICS_PORT=str(consumer_port),
        NOTIFY_WORKER_METRICS_PORT=str(worker_port),
        NOTIFY_STREAM_SAMPLE_SECONDS="1",
    )
    stream, group = pipeline.env["NOTIFY_STREAM"], pipeline.env["NOTIFY_GROUP"]
    rules = rules_for_test(tmp_path / "alerts.yml", thresholds=THRESHOLDS)
    prom = Prometheus(
        tmp_path, {"notify-consumer": consumer_port, "notify-worker": worker_port}, rules
    )
    procs(prom.process)
    prom.wait_ready()

    # The first dead letter after a consumer start: Prometheus must have seen the counter
    # at 0 before it, or increase() has nothing to compare the 1 with.
    first = 'notify_dead_letters_total{job="notify-consumer", reason="not_object"}'
    wait_until(lambda: prom.query(first) != [], timeout=15, message=f"{first} scraped")
    assert [v for _, v in prom.query(first)] == [0.0]
    redis_client.xadd(stream, {"id": "bad-1", "type": "shipment.delayed", "data": "[]"})

    # Meanwhile, recipients the consumer rejects (invalid_recipient) are SMS failures too.
    # One dead letter fires for about one window only: remember each alert once it fired.
    serial = itertools.count()
    fired: set[str] = set()

    def reject_and_check() -> bool:
        n = next(serial)
        data = shipment(n, tokens=0)
        data["customer"]["phone"] = "not-a-phone"
        publish(redis_client, stream, f"bad-phone-{stream}-{n}", "shipment.delayed", data)
        if "firing" in prom.alert_states("NotifyDeadLettersIncreasing", reason="not_object"):
            fired.add("NotifyDeadLettersIncreasing")
        if "firing" in prom.alert_states("NotifyChannelFailureRatioHigh", channel="sms"):
            fired.add("NotifyChannelFailureRatioHigh")
        return len(fired) == 2

    wait_until(
        reject_and_check,
        timeout=30,
        interval=0.5,
        message=lambda: f"dead-letter and failure alerts; fired: {fired}; active: {prom.alerts()}",
    )

    # No consumer: the worker alone serves the lag, and the backlog pages.
    assert pipeline.consumer.stop() == 0
    wait_until(
        lambda: prom.query('up{job="notify-consumer"} == 0') != [],
        timeout=10,
        message="prometheus to see the consumer gone",
    )
    seen: set[str] = set()

    def pile_up_and_check() -> bool:
        for _ in range(5):
            n = next(serial)
            publish(redis_client, stream, f"backlog-{stream}-{n}", "shipment.delayed", shipment(n))
        seen.update(prom.alert_states("NotifyStreamLagHigh", stream=stream, group=group))
        return "firing" in seen

    wait_until(pile_up_and_check, timeout=30, interval=0.25, message="NotifyStreamLagHigh")
    assert seen == {"pending", "firing"}
    [(labels, lag)] = prom.query(f'notify_stream_lag{{stream="{stream}"}}')
    assert labels["job"] == "notify-worker" and lag > 20


SMS_ONLY = """
rules:
  - name: text
    on: shipment.delayed
    channel: sms
    to: "{{ data.phone }}"
    body: "Your code is {{ data.code }}"
"""


def test_a_paused_country_fires_its_alert(
    start_pipeline: processes.StartPipeline,
    procs: processes.Start,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> None:
    worker_port = free_port()
    breaker = country_key("GB")
    redis_client.delete(breaker)
    try:
        pipeline = start_pipeline(
            SMS_ONLY, NOTIFY_WORKER_METRICS_PORT=str(worker_port), NOTIFY_SMS_COUNTRIES="GB",
            NOTIFY_SMS_COUNTRY_HOURLY_SEGMENTS="2",
        )  # fmt: skip
        stream = pipeline.env["NOTIFY_STREAM"]
        rules = rules_for_test(tmp_path / "alerts.yml", thresholds={})
        prom = Prometheus(tmp_path, {"notify-worker": worker_port}, rules)
        procs(prom.process)
        prom.wait_ready()
        # Known countries start at 0, so the first held-back SMS is an increase.
        first = 'notify_sms_country_paused_total{job="notify-worker", country="GB"}'
        wait_until(lambda: prom.query(first) != [], timeout=15, message=f"{first} scraped")
        serial = itertools.count()

        def text_and_check() -> bool:
            n = next(serial)
            data = {"phone": f"+4474001{n:05d}", "code": n}
            publish(redis_client, stream, f"gb-{stream}-{n}", "shipment.delayed", data)
            return "firing" in prom.alert_states("NotifySmsCountryPaused", country="GB")

        wait_until(text_and_check, timeout=30, interval=0.5,
                   message=lambda: f"NotifySmsCountryPaused; active: {prom.alerts()}")  # fmt: skip
    finally:
        redis_client.delete(breaker)
