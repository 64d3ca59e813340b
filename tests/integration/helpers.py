"""Small helpers shared by integration tests: publishing, waiting for rows, reading them."""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.request
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import asyncpg
import redis
from prometheus_client.parser import text_string_to_metric_families

from sandbox.google.identifiers import registration_token
from schemas import TERMINAL
from tests.integration import processes

# Not the repository's rules.yaml on purpose: the bodies show the raw minutes the tests
# assert (no humanize_minutes), and an event makes its two notifications at once (no
# delayed eta-reminder, no delivered-push).
RULES = """
rules:
  - name: delay-sms
    on: shipment.delayed
    when: data.delay_minutes >= 30
    channel: sms
    to: "{{ data.customer.phone }}"
    body: >-
      Hi {{ data.customer.name }}, shipment {{ data.shipment_id }}
      is {{ data.delay_minutes }} min late.
  - name: delay-push
    on: shipment.delayed
    channel: push
    to: "{{ data.customer.push_tokens }}"
    title: "Shipment delayed"
    body: "Shipment {{ data.shipment_id }} delayed"
"""


# One SMS rule and nothing else: a test that counts messages counts one per event.
SMS_ONLY = """
rules:
  - name: delay-sms
    on: shipment.delayed
    channel: sms
    to: "{{ data.customer.phone }}"
    body: "Shipment {{ data.shipment_id }} is {{ data.delay_minutes }} min late."
"""
# SMS_ONLY and a delayed rule on another event type, for what the scheduler does.
SMS_AND_REMINDER = (
    SMS_ONLY
    + """\
  - name: reminder
    on: shipment.booked
    channel: sms
    to: "{{ data.customer.phone }}"
    body: "Reminder for {{ data.shipment_id }}"
    delay: 1s
"""
)


def notify(
    env: Mapping[str, str] | None,
    *args: str,
    input: str | None = None,
    check: bool = False,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run the installed `notify` command from the repository root, output kept as text.

    env None inherits this process's environment, as a shell would."""
    return subprocess.run(
        [str(processes.BIN / "notify"), *args],
        env=env, input=input, cwd=processes.ROOT, capture_output=True, text=True,
        timeout=timeout, check=check,
    )  # fmt: skip


def push_token(n: int, i: int = 0) -> str:
    """Customer n's i-th device: a well-formed registration token, as getToken() returns."""
    return registration_token(f"customer-{n}-{i}")


def shipment(n: int, delay: int = 45, tokens: int = 1) -> dict[str, Any]:
    return {
        "shipment_id": f"SHP-{n}",
        "delay_minutes": delay,
        "customer": {
            "name": f"Customer {n}",
            "phone": f"+1415555{n:04d}",
            "push_tokens": [push_token(n, i) for i in range(tokens)],
        },
    }


def publish(
    client: redis.Redis,
    stream: str,
    event_id: str,
    event_type: str,
    data: dict[str, Any],
    subject: str | None = None,
    time: str | None = None,
) -> None:
    fields = {"id": event_id, "type": event_type, "data": json.dumps(data)}
    if subject:
        fields["subject"] = subject
    if time:
        fields["time"] = time
    client.xadd(stream, fields)  # type: ignore[arg-type]


def publish_events(
    client: redis.Redis,
    stream: str,
    prefix: str,
    payloads: Iterable[dict[str, Any]],
    *,
    first: int = 0,
    event_type: str = "shipment.delayed",
) -> None:
    """One event per payload, with ids `prefix-<first>`, `prefix-<first + 1>`, ..., in order
    and in one round trip."""
    pipe = client.pipeline(transaction=False)
    for n, data in enumerate(payloads, start=first):
        fields = {"id": f"{prefix}-{n}", "type": event_type, "data": json.dumps(data)}
        pipe.xadd(stream, fields)  # type: ignore[arg-type]
    pipe.execute()


def wait_for_rows(
    database_url: str,
    event_ids: str,
    total: int,
    statuses: Collection[str] = TERMINAL,
    *,
    timeout: float = 30,
) -> list[dict[str, Any]]:
    """Wait until exactly `total` rows have an event id LIKE `event_ids` (`prefix-%`, or one
    id), each in one of `statuses` (default: done with the provider); return them by id."""
    found: list[dict[str, Any]] = []

    def done() -> bool:
        found[:] = rows(database_url, "event_id LIKE $1", event_ids)
        return len(found) == total and all(r["status"] in statuses for r in found)

    def describe() -> str:
        now = dict(Counter(r["status"] for r in found))
        return f"{total} rows of {event_ids} in {sorted(statuses)}; now {now}"

    processes.wait_until(done, timeout=timeout, interval=0.2, message=describe)
    return found


def fetch(database_url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    async def fetch() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(database_url)
        try:
            return [dict(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    return asyncio.run(fetch())


def rows(database_url: str, where: str = "true", *args: Any) -> list[dict[str, Any]]:
    return fetch(database_url, f"SELECT * FROM notifications WHERE {where} ORDER BY id", *args)


def attempts(database_url: str, notification_id: int) -> list[dict[str, Any]]:
    sql = "SELECT * FROM notification_attempts WHERE notification_id = $1 ORDER BY attempt"
    return fetch(database_url, sql, notification_id)


def count(database_url: str, where: str = "true", *args: Any) -> int:
    sql = f"SELECT count(*) AS n FROM notifications WHERE {where}"
    return int(fetch(database_url, sql, *args)[0]["n"])


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(where: int | str) -> Samples:
    """A /metrics page (a port on this host, or a URL) as {(name, labels): value}."""
    url = f"http://127.0.0.1:{where}/metrics" if isinstance(where, int) else where
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
