"""`make demo`: the whole pipeline on this machine, with a table of outcomes at the end.

Starts the provider emulators (unless real Twilio/Firebase credentials are set), migrates,
runs a consumer, a worker and beat, publishes sample events with `notify publish`, waits for
the outcomes, prints them, and stops everything it started.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from notify.logs import mask
from sandbox import Sandbox, launcher
from sandbox.credentials import write_service_account
from sandbox.identifiers import registration_token
from sandbox.launcher import BIN, ROOT, emulator_env

WORK = ROOT / ".demo"
# Registration tokens shaped like the ones apps get from getToken(): FCM (and its emulator)
# rejects anything else as INVALID_ARGUMENT. The dead one is well formed but unregistered.
ANN_PHONE, ANN_TABLET = registration_token("ann-phone"), registration_token("ann-tablet")
BOB, CLEO = registration_token("bob-phone"), registration_token("cleo-phone")
DEAD_DEVICE = registration_token("uninstalled-app")


def customer(n: int, phone: str, tokens: list[str]) -> dict[str, Any]:
    return {"name": ["Ann", "Bob", "Cleo", "Dev"][n % 4], "phone": phone, "push_tokens": tokens}


def samples(run: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(type, subject, data): delays, a short delay, a bad number, a dead token, a delivery."""
    return [
        (
            "shipment.delayed",
            f"SHP-{run}-1",
            {
                "shipment_id": f"SHP-{run}-1",
                "delay_minutes": 45,
                "customer": customer(0, "+14155550100", [ANN_PHONE, ANN_TABLET]),
            },
        ),
        (
            "shipment.delayed",
            f"SHP-{run}-2",
            {
                "shipment_id": f"SHP-{run}-2",
                "delay_minutes": 95,
                "customer": customer(1, "+442079460958", [BOB]),
            },
        ),
        (
            "shipment.delayed",
            f"SHP-{run}-3",
            {
                "shipment_id": f"SHP-{run}-3",
                "delay_minutes": 10,
                "customer": customer(2, "+14155550111", [CLEO]),
            },
        ),
        (
            "shipment.delayed",
            f"SHP-{run}-4",
            {
                "shipment_id": f"SHP-{run}-4",
                "delay_minutes": 60,
                "customer": customer(3, "12345", [DEAD_DEVICE]),
            },
        ),
        (
            "shipment.delivered",
            f"SHP-{run}-1",
            {
                "shipment_id": f"SHP-{run}-1",
                "customer": customer(0, "+14155550100", [ANN_PHONE]),
            },
        ),
    ]


async def fetch(dsn: str, prefix: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(
            await conn.fetch(
                """SELECT id, event_id, rule, channel, recipient, status, error_code, body
               FROM notifications WHERE event_id LIKE $1 ORDER BY id""",
                prefix + "%",
            )
        )
    finally:
        await conn.close()


def table(rows: list[asyncpg.Record]) -> str:
    head = ("ID", "EVENT", "RULE", "CHANNEL", "RECIPIENT", "STATUS", "ERROR", "BODY")
    lines = [
        (
            str(r["id"]),
            r["event_id"],
            r["rule"],
            r["channel"],
            mask(r["recipient"]),
            r["status"],
            r["error_code"] or "",
            (r["body"] or "")[:60],
        )
        for r in rows
    ]
    widths = [max(len(x) for x in col) for col in zip(head, *lines, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(
        [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
        + [fmt.format(*line) for line in lines]
    )


def main() -> int:
    WORK.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.setdefault("NOTIFY_RULES", str(ROOT / "rules.yaml"))
    env.setdefault("NOTIFY_SCHEDULE_INTERVAL_SECONDS", "1")
    env["NOTIFY_LOG_LEVEL"] = env.get("NOTIFY_LOG_LEVEL", "INFO")
    sandbox: Sandbox | None = None
    creds_file = Path(env.get("GOOGLE_APPLICATION_CREDENTIALS", "serviceAccountKey.json"))
    if not (env.get("TWILIO_ACCOUNT_SID") and creds_file.exists()):
        sandbox = Sandbox().start()
        sandbox.fail_recipient(DEAD_DEVICE, {"error_code": "UNREGISTERED"})
        creds = write_service_account(WORK / "serviceAccountKey.json", sandbox.token_uri)
        env.update(emulator_env(sandbox.url, creds, TWILIO_AUTH_TOKEN="demo-token"))
        print(f"demo: no provider credentials set; using the local emulators at {sandbox.url}")
    subprocess.run([str(BIN / "notify"), "migrate"], env=env, check=True)
    for log in WORK.glob("*.log"):
        log.unlink()  # each run's logs start empty, so "ready" is this run's
    procs = [
        launcher.worker(env, WORK).start(),
        launcher.beat(env, WORK).start(),
        launcher.consumer(env, WORK).start(),
    ]
    code = 0
    try:
        procs[0].wait_for_log("ready")
        procs[2].wait_for_log("consumer started")
        run = uuid.uuid4().hex[:6]
        for n, (event_type, subject, data) in enumerate(samples(run), 1):
            cmd = [
                str(BIN / "notify"),
                "publish",
                event_type,
                "--id",
                f"demo-{run}-{n}",
                "--subject",
                subject,
                "--data",
                json.dumps(data),
            ]
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"demo: published {n} events (run {run}); waiting for outcomes...")
        dsn = env.get("DATABASE_URL", "postgresql://localhost/notifications")
        deadline = time.monotonic() + 30
        rows = asyncio.run(fetch(dsn, f"demo-{run}"))
        while time.monotonic() < deadline and (
            not rows or any(r["status"] in ("pending", "sending") for r in rows)
        ):
            time.sleep(0.5)
            rows = asyncio.run(fetch(dsn, f"demo-{run}"))
        print("\nNotifications\n" + table(rows))
        if sandbox is not None:
            print("\nWhat the phones received (emulator)")
            for m in sandbox.messages():
                title = f"[{m.title}] " if m.title else ""
                print(f"  {m.channel:<4} {mask(m.to):<16} {title}{m.body}")
        if not any(r["status"] == "sent" for r in rows):
            code = 1
            print("demo: nothing was sent; see the logs in .demo/", file=sys.stderr)
    except (RuntimeError, TimeoutError) as exc:
        code = 1
        print(f"demo: {exc}; see the logs in .demo/", file=sys.stderr)
    finally:
        for proc in reversed(procs):  # the consumer first: nothing new reaches the worker
            print(f"demo: stopped {proc.name} (exit {proc.stop()})")
        if sandbox is not None:
            sandbox.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
