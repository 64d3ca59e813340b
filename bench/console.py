"""The console's pages: p50 and p99 of each, over HTTP, against a `notify console` process
on a table of `rows` notifications (one day's partition, 10,000 recipients).

Signed in once through the form, then a session cookie, as a browser does: HTTP Basic would
time argon2 (tens of ms by design) instead of the page.
"""

from __future__ import annotations

import asyncio
import http.client
import statistics
import time
import urllib.parse
from typing import Any

import asyncpg

from bench.env import BenchEnv
from harness import launcher
from notify.partitions import id_sql

RECIPIENTS = 10_000
REQUESTS = 200
PASSWORD = "bench password"

_FILL = f"""
INSERT INTO notifications (id, idempotency_key, event_id, event_type, event_subject, rule,
    channel, recipient, body, status, attempts, provider_message_id, event_time, rules_version)
SELECT {id_sql("now()")}, md5($3 || i::text), 'evt-' || $3 || '-' || i, 'shipment.delayed',
    'SHP-' || $3 || '-' || (i / 2), 'delay-sms', 'sms',
    '+1415555' || lpad((i % {RECIPIENTS})::text, 4, '0'), 'Hi Ann, shipment SHP-1 is late.',
    'pending', 1, 'SM' || $3 || i, now(), 'bench'
FROM generate_series($1::bigint, $2::bigint) AS i
"""


async def _fill(url: str, rows: int, tag: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        step = 200_000
        for start in range(0, rows, step):
            await conn.execute(_FILL, start, min(rows, start + step) - 1, tag)
        await conn.execute("ANALYZE notifications")
        sample = await conn.fetchval(
            "SELECT id FROM notifications WHERE event_id = $1", f"evt-{tag}-1234"
        )
        await conn.execute(
            """INSERT INTO notification_attempts (notification_id, attempt, finished_at,
                   outcome, provider_message_id) VALUES ($1, 1, now(), 'sent', 'SMx')""",
            sample,
        )
        return int(sample)
    finally:
        await conn.close()


class _Browser:
    """One keep-alive connection with the session cookie."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.cookie = ""

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, str]:
        headers = {"Cookie": self.cookie}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        answer = self.conn.getresponse()
        text = answer.read().decode()
        cookie = answer.getheader("set-cookie")
        if cookie:
            self.cookie = cookie.split(";")[0]
        return answer.status, text

    def sign_in(self) -> None:
        _, form = self.request("GET", "/login")
        csrf = form.split('name="csrf" value="')[1].split('"')[0]
        body = urllib.parse.urlencode({"csrf": csrf, "name": "bench", "password": PASSWORD})
        status, _ = self.request("POST", "/login", body)
        if status != 303:
            raise RuntimeError(f"bench sign-in answered {status}")


def _times(browser: _Browser, path: str) -> dict[str, float]:
    seconds = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        status, _ = browser.request("GET", path)
        seconds.append(time.perf_counter() - started)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}")
    cuts = statistics.quantiles(seconds, n=100)
    return {"p50_ms": round(cuts[49] * 1000, 1), "p99_ms": round(cuts[98] * 1000, 1)}


def console_pages(env: BenchEnv, rows: int) -> dict[str, Any]:
    from console import users

    tag = env.tag
    sample = asyncio.run(_fill(env.database_url, rows, tag))
    users_file = env.out / "bench-console-users"
    users.add(str(users_file), "bench", users.Role.OPERATOR, PASSWORD)
    port = launcher.free_port()
    proc = env.start(
        launcher.console(
            env.env(NOTIFY_CONSOLE_USERS=str(users_file), NOTIFY_CONSOLE_PORT=str(port)), env.out
        )
    )
    try:
        proc.wait_for_log("console listening")
        browser = _Browser(port)
        browser.sign_in()
        pages = {
            "search by national number": "/?q=" + urllib.parse.quote("(415) 555-1234"),
            "search by subject": f"/?q=SHP-{tag}-617",
            "notification (timeline)": f"/notifications/{sample}",
            "recipient": "/recipients/sms/%2B14155551234",
            "event (why not)": f"/events/evt-{tag}-1234",
            "suppressions": "/suppressions",
            "operations": "/operations",
            "rules": "/rules",
        }
        figures = {name: _times(browser, path) for name, path in pages.items()}
    finally:
        env.stop(proc)
    return {"rows": rows, "requests": REQUESTS, "pages": figures}
