"""`webhooks` and `relay` parts: one `notify webhooks` taking signed status callbacks (against
a naive per-request handler in the same run), and the outcomes relay's rate and lag.

The load generator is wrk (C, epoll; Debian's `wrk`), replaying pre-signed callbacks from
files, so the client is not what limits the figure.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import psutil
import redis
from twilio.request_validator import RequestValidator

from bench.env import BenchEnv
from bench.runs import pending_rows, percentile
from harness.launcher import Process, free_port, wait_until
from notify.settings import Settings
from notify.webhook_paths import STATUS_CALLBACK_PATH
from schemas import Channel

PUBLIC_URL = "https://notify.bench.invalid"
SCRIPT = Path(__file__).with_name("webhooks.lua")


def _wrk_missing() -> dict[str, Any] | None:
    if shutil.which("wrk"):
        return None
    return {"skipped": "wrk not installed (Debian/Ubuntu: apt-get install wrk)"}


async def _seed(dsn: str, tag: str, rows: int) -> list[str]:
    """`sent` SMS rows awaiting receipts; their own `sent` outcomes are not the point here."""
    conn = await asyncpg.connect(dsn)
    try:
        records = await conn.fetch(
            """INSERT INTO notifications (idempotency_key, event_id, event_type, rule, channel,
                   recipient, body, status, provider_message_id, attempts, event_time)
               SELECT $1 || g, $1 || g, 'shipment.delayed', 'bench-sms', 'sms',
                   '+1415555' || lpad((g % 10000)::text, 4, '0'), 'bench', 'sent',
                   'SM' || md5($1 || g), 1, now() - interval '3 seconds'
               FROM generate_series(1, $2) AS g RETURNING provider_message_id""",
            tag,
            rows,
        )
        await conn.execute("DELETE FROM outcome_outbox")
        return [r["provider_message_id"] for r in records]
    finally:
        await conn.close()


def _write_requests(sids: list[str], threads: int, prefix: Path, token: str) -> None:
    """Per wrk thread, each SID's `sent` then `delivered` callback, signed as Twilio signs."""
    sign = RequestValidator(token).compute_signature
    url = PUBLIC_URL + STATUS_CALLBACK_PATH
    files = [prefix.with_name(f"{prefix.name}.{t}").open("w") for t in range(threads)]
    try:
        for n, sid in enumerate(sids):
            for status in ("sent", "delivered"):
                params = {
                    "AccountSid": "AC" + "0" * 32, "ApiVersion": "2010-04-01",
                    "From": "+15005550006", "To": "+14155550100", "MessageSid": sid,
                    "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
                }  # fmt: skip
                files[n % threads].write(f"{urlencode(params)}\t{sign(url, params)}\n")
    finally:
        for f in files:
            f.close()


@dataclass
class Progress:
    """Receipts committed (the table's highest id) and the server's RSS, sampled in a thread."""

    dsn: str
    pid: int
    interval: float = 0.5
    samples: list[tuple[float, int, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Progress:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    async def _run(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        proc = psutil.Process(self.pid)
        try:
            while True:  # one last sample after the load stopped: every answer is counted
                last = self._stop.is_set()
                top = await conn.fetchval("SELECT coalesce(max(id), 0) FROM notification_receipts")
                rss = proc.memory_info().rss / 2**20
                self.samples.append((time.monotonic(), int(top), rss))
                if last:
                    return
                await asyncio.sleep(self.interval)
        finally:
            await conn.close()

    def steady_rate(self) -> float:
        """Receipts/s over the middle 80% of the run (start-up and tail left out)."""
        moving = [s for s in self.samples if s[1] > self.samples[0][1]]
        if len(moving) < 5:
            return float("nan")
        lo, hi = moving[len(moving) // 10], moving[len(moving) * 9 // 10]
        return (hi[1] - lo[1]) / max(1e-9, hi[0] - lo[0])


def _load(port: int, prefix: Path, threads: int, connections: int, seconds: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}{STATUS_CALLBACK_PATH}"
    args = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
            "--timeout", "10s", "-s", str(SCRIPT), url, "--", str(prefix)]  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 120, check=True)
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _serve_and_load(
    env: BenchEnv, name: str, args: list[str], rows: int, seconds: int, connections: int
) -> dict[str, Any]:
    threads = 2
    tag = f"wh-{name}-{env.tag}-"
    sids = asyncio.run(_seed(env.database_url, tag, rows))
    prefix = env.out / f"callbacks-{name}"
    settings = Settings.from_env(env.env())
    assert settings.twilio_auth_token is not None
    _write_requests(sids, threads, prefix, settings.twilio_auth_token)
    port = free_port()
    server = env.start(Process(name, args, env.env(
        NOTIFY_PUBLIC_URL=PUBLIC_URL, NOTIFY_WEBHOOK_HOST="127.0.0.1",
        NOTIFY_WEBHOOK_PORT=str(port)), env.out))  # fmt: skip
    wait_until(lambda: _listening(port), 30, message=f"{name} listening")
    progress = Progress(env.database_url, server.pid).start()
    try:
        figures = _load(port, prefix, threads, connections, seconds)
    finally:
        progress.stop()
        env.stop(server)
        for t in range(threads):
            prefix.with_name(f"{prefix.name}.{t}").unlink(missing_ok=True)
    committed = progress.samples[-1][1] - progress.samples[0][1]
    warm = [rss for t, _, rss in progress.samples if t - progress.samples[0][0] > 5]
    return {
        # Every answered callback is a committed receipt: `committed` >= `callbacks`.
        "callbacks": figures["requests"], "non_2xx": figures["non2xx"],
        "socket_errors": sum(figures[k] for k in ("connect_errors", "read_errors",
                                                   "write_errors", "timeouts")),
        "committed": committed, "per_s": progress.steady_rate(),
        "p50_ms": figures["p50_us"] / 1000, "p99_ms": figures["p99_us"] / 1000,
        "max_ms": figures["max_us"] / 1000, "connections": connections, "seconds": seconds,
        "rss_start_mb": warm[0] if warm else float("nan"),
        "rss_max_mb": max(warm, default=float("nan")),
        "rss_end_mb": warm[-1] if warm else float("nan"),
    }  # fmt: skip


def _listening(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
    except OSError:
        return False
    return True


def callbacks(env: BenchEnv, seconds: int, naive_seconds: int, connections: int) -> dict[str, Any]:
    """Signed `sent` + `delivered` callbacks for fresh rows, replayed by wrk for `seconds`."""
    missing = _wrk_missing()
    if missing:
        return missing
    # Enough distinct rows that the run hardly replays a callback (12,000/s of room); a
    # replayed one is a duplicate, recorded and harmless.
    grouped = _serve_and_load(env, "webhooks", ["notify", "webhooks"], seconds * 6000,
                              seconds, connections)  # fmt: skip
    naive = _serve_and_load(env, "naive-webhooks",
                            ["python", "-m", "bench.naive_webhooks"], naive_seconds * 2000,
                            naive_seconds, connections)  # fmt: skip
    return {"grouped": grouped, "naive": naive, "ratio": grouped["per_s"] / naive["per_s"]}


async def _fill_outbox(dsn: str, rows: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM outcome_outbox")  # earlier parts' outcomes
        await conn.execute(
            """INSERT INTO outcome_outbox (outcome_id, type, subject, data)
               SELECT g || '-sent', 'notification.sent', 'SHP-' || g,
                   json_build_object('notification_id', g, 'event_id', 'bench-' || g,
                       'rule', 'bench-sms', 'channel', 'sms', 'recipient', '+14155550100',
                       'status', 'sent', 'error_code', NULL,
                       'provider_message_id', 'SM' || md5(g::text))::text
               FROM generate_series(1, $1) AS g""",
            rows,
        )
    finally:
        await conn.close()


async def _outbox(dsn: str) -> tuple[int, float]:
    conn = await asyncpg.connect(dsn)
    try:
        record = await conn.fetchrow(
            """SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(time)), 0) AS age
               FROM outcome_outbox"""
        )
        assert record is not None
        return int(record["n"]), float(record["age"])
    finally:
        await conn.close()


async def _lag_while_sending(
    dsn: str, prefix: str, sends: int
) -> tuple[list[tuple[int, float]], float]:
    """Outbox backlog and oldest age every 0.2 s until the workers have sent every row."""
    conn = await asyncpg.connect(dsn)
    lag: list[tuple[int, float]] = []
    started = time.monotonic()
    try:
        while time.monotonic() - started < 300:
            record = await conn.fetchrow(
                """SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(time)), 0) AS age
                   FROM outcome_outbox"""
            )
            assert record is not None
            lag.append((int(record["n"]), float(record["age"])))
            sent = await conn.fetchval(
                "SELECT count(*) FROM notifications WHERE event_id LIKE $1 AND status = 'sent'",
                prefix + "%",
            )
            if sent >= sends:
                break
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    return lag, time.monotonic() - started


def relay(env: BenchEnv, backlog: int, sends: int, processes: int) -> dict[str, Any]:
    """The relay (in `notify consume`) draining a backlog, then keeping up with workers."""
    client = redis.Redis.from_url(env.redis_url)
    outcomes = f"bench-outcomes-{env.tag}"
    consumer_env = {"NOTIFY_STREAM": f"{env.stream}-relay", "NOTIFY_OUTCOMES_STREAM": outcomes}
    try:
        asyncio.run(_fill_outbox(env.database_url, backlog))
        started = time.monotonic()
        consumer = env.consumer(**consumer_env)
        drained: list[tuple[float, int]] = []
        while True:
            left, _ = asyncio.run(_outbox(env.database_url))
            drained.append((time.monotonic(), left))
            if left == 0:
                break
            time.sleep(0.1)
        moving = [(t, n) for t, n in drained if n < backlog]
        first = drained[max(0, drained.index(moving[0]) - 1)] if moving else drained[0]
        drain_rate = backlog / max(1e-9, drained[-1][0] - first[0])
        published = client.xlen(outcomes)

        # Workers at full speed with the relay running: how far behind does it fall?
        sandbox = env.sandbox()
        sandbox.reset()
        sandbox.set_latency(50)
        tag = f"{env.tag}-relay"
        batch = Settings.from_env().task_batch_size
        asyncio.run(env.queue_rows(pending_rows(sends, Channel.SMS, tag), batch))
        workers = [env.worker(f"relay-worker{i}") for i in range(processes)]
        lag, send_seconds = asyncio.run(_lag_while_sending(env.database_url, f"w-{tag}-", sends))
        caught_up = time.monotonic()
        wait_until(lambda: asyncio.run(_outbox(env.database_url))[0] == 0, 60)
        tail = time.monotonic() - caught_up
        for proc in workers:
            env.stop(proc)
        env.stop(consumer)
        sandbox.set_latency(0)
    finally:
        client.delete(outcomes, consumer_env["NOTIFY_STREAM"])
        client.close()
    return {
        "backlog": backlog, "drain_per_s": drain_rate, "published": published,
        "wall_s": time.monotonic() - started, "sends": sends, "worker_processes": processes,
        "sends_per_s": sends / max(1e-9, send_seconds),
        "lag_rows_p50": percentile([n for n, _ in lag], 0.5),
        "lag_age_p50_s": percentile([a for _, a in lag], 0.5),
        "lag_series": [(n, round(a, 2)) for n, a in lag],
        "lag_rows_max": max((n for n, _ in lag), default=0),
        "lag_rows_p99": percentile([n for n, _ in lag], 0.99),
        "lag_age_max_s": max((a for _, a in lag), default=0.0),
        "lag_age_p99_s": percentile([a for _, a in lag], 0.99),
        "drained_after_last_send_s": tail,
    }  # fmt: skip
