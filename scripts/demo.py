"""`make demo`: the whole pipeline on this machine, with a table of outcomes at the end.

Starts the provider emulators (unless real Twilio/Firebase credentials are set), migrates,
runs `notify webhooks`, a consumer, a worker and beat, publishes sample events with `notify
publish`, waits for the outcomes and the delivery receipts, prints them with what reached the
outcomes stream, and stops everything it started.
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
import redis

from harness import launcher
from harness.launcher import BIN, ROOT, emulator_env
from notify.logs import mask
from sandbox import Sandbox
from sandbox.google.credentials import write_service_account
from sandbox.google.identifiers import registration_token

WORK = ROOT / ".demo"
# Registration tokens shaped like the ones apps get from getToken(): FCM (and its emulator)
# rejects anything else as INVALID_ARGUMENT. The dead one is well formed but unregistered.
ANN_PHONE, ANN_TABLET = registration_token("ann-phone"), registration_token("ann-tablet")
BOB, CLEO = registration_token("bob-phone"), registration_token("cleo-phone")
DEAD_DEVICE = registration_token("uninstalled-app")
DEMO_TOKEN = "demo-token"


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


def start_emulators(env: dict[str, str]) -> Sandbox:
    """The emulators, answering as Twilio and FCM would, signed callbacks included: `sent`,
    then `delivered` a second later (Bob's UK number: `undelivered`, 30003)."""
    sandbox = Sandbox(delivery_delay_s=1.0, webhook_auth_token=DEMO_TOKEN).start()
    sandbox.fail_recipient(DEAD_DEVICE, {"error_code": "UNREGISTERED"})
    sandbox.set_sms_outcome("+442079460958", "undelivered", 30003)
    creds = write_service_account(WORK / "serviceAccountKey.json", sandbox.token_uri)
    env.update(emulator_env(sandbox.url, creds, TWILIO_AUTH_TOKEN=DEMO_TOKEN))
    # `notify webhooks` on a local port; Twilio (here, the emulator) calls the public URL.
    port = launcher.free_port()
    env.setdefault("NOTIFY_WEBHOOK_HOST", "127.0.0.1")
    env.setdefault("NOTIFY_WEBHOOK_PORT", str(port))
    env.setdefault("NOTIFY_PUBLIC_URL", f"http://127.0.0.1:{env['NOTIFY_WEBHOOK_PORT']}")
    print(f"demo: no provider credentials set; using the local emulators at {sandbox.url}")
    return sandbox


def publish_samples(env: dict[str, str], run: str) -> int:
    for n, (event_type, subject, data) in enumerate(samples(run), 1):
        cmd = [str(BIN / "notify"), "publish", event_type, "--id", f"demo-{run}-{n}",
               "--subject", subject, "--data", json.dumps(data)]  # fmt: skip
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    return n


def settled(rows: list[asyncpg.Record], receipts: bool) -> bool:
    """Nothing left to send, and (with receipts) no SMS still waiting for its receipt."""
    waiting = ("pending", "sending", "sent") if receipts else ("pending", "sending")
    return bool(rows) and not any(
        r["status"] in waiting and (r["status"] != "sent" or r["channel"] == "sms") for r in rows
    )


def outcomes(env: dict[str, str], run: str) -> list[tuple[str, dict[str, Any]]]:
    """This run's entries on the outcomes stream (what upstream services read)."""
    client = redis.Redis.from_url(env.get("REDIS_URL", "redis://localhost:6379/0"))
    stream = env.get("NOTIFY_OUTCOMES_STREAM", "notifications.outcomes")
    try:
        entries: Any = client.xrevrange(stream, count=500)
    finally:
        client.close()
    found = []
    for _, fields in reversed(entries):
        data = json.loads(fields[b"data"])
        if str(data.get("event_id", "")).startswith(f"demo-{run}-"):
            found.append((fields[b"type"].decode(), data))
    return found


def report(
    rows: list[asyncpg.Record],
    sandbox: Sandbox | None,
    published: list[tuple[str, dict[str, Any]]],
    receipts: bool,
    run: str,
) -> int:
    """Print the rows, what the emulated phones got and the outcomes stream; 1 if nothing
    was sent (or, with receipts on, nothing was delivered)."""
    print("\nNotifications\n" + table(rows))
    if sandbox is not None:
        print("\nWhat the phones received (emulator)")
        # This run's (earlier runs' reminders may fall due meanwhile).
        for m in (m for m in sandbox.messages() if run in (m.body or "")):
            title = f"[{m.title}] " if m.title else ""
            print(f"  {m.channel:<4} {mask(m.to):<16} {title}{m.body}")
    print("\nOutcomes stream (what upstream services read)")
    for kind, data in published:
        print(f"  {kind:<26} {data['rule']:<14} {data['channel']:<4} "
              f"{data['status']:<11} {data['error_code'] or ''}")  # fmt: skip
    if not any(r["status"] in ("sent", "delivered") for r in rows):
        print("demo: nothing was sent; see the logs in .demo/", file=sys.stderr)
        return 1
    if receipts and not any(r["status"] == "delivered" for r in rows):
        print("demo: no delivery receipt arrived; see the logs in .demo/", file=sys.stderr)
        return 1
    return 0


DEMO_USER, DEMO_PASSWORD = "demo", "demo-password"


def start_console(env: dict[str, str]) -> str:
    """`notify console` with one operator, `demo`, in a users file of the demo's own."""
    from console import users

    users_file = WORK / "console-users"
    users.add(str(users_file), DEMO_USER, users.Role.OPERATOR, DEMO_PASSWORD)
    env.setdefault("NOTIFY_CONSOLE_USERS", str(users_file))
    env.setdefault("NOTIFY_CONSOLE_PORT", "8090")
    return f"http://127.0.0.1:{env['NOTIFY_CONSOLE_PORT']}/"


def main() -> int:
    WORK.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.setdefault("NOTIFY_RULES", str(ROOT / "rules.yaml"))
    env.setdefault("NOTIFY_SCHEDULE_INTERVAL_SECONDS", "1")
    env["NOTIFY_LOG_LEVEL"] = env.get("NOTIFY_LOG_LEVEL", "INFO")
    sandbox: Sandbox | None = None
    creds_file = Path(env.get("GOOGLE_APPLICATION_CREDENTIALS", "serviceAccountKey.json"))
    if not (env.get("TWILIO_ACCOUNT_SID") and creds_file.exists()):
        sandbox = start_emulators(env)
    receipts = bool(env.get("NOTIFY_PUBLIC_URL"))
    subprocess.run([str(BIN / "notify"), "migrate"], env=env, check=True)
    for log in WORK.glob("*.log"):
        log.unlink()  # each run's logs start empty, so "ready" is this run's
    procs = [launcher.webhooks(env, WORK).start()] if receipts else []
    console_url = start_console(env)
    procs.append(launcher.console(env, WORK).start())
    procs += [
        launcher.worker(env, WORK).start(),
        launcher.beat(env, WORK).start(),
        launcher.consumer(env, WORK).start(),
    ]
    code = 0
    try:
        procs[-3].wait_for_log("ready")
        procs[-1].wait_for_log("consumer started")
        if receipts:
            procs[0].wait_for_log("webhooks listening")
        run = uuid.uuid4().hex[:6]
        n = publish_samples(env, run)
        print(f"demo: published {n} events (run {run}); waiting for outcomes and receipts...")
        dsn = env.get("DATABASE_URL", "postgresql://localhost/notifications")
        deadline = time.monotonic() + 45
        rows = asyncio.run(fetch(dsn, f"demo-{run}"))
        while time.monotonic() < deadline and not settled(rows, receipts):
            time.sleep(0.5)
            rows = asyncio.run(fetch(dsn, f"demo-{run}"))
        time.sleep(1.5)  # the relay publishes the last outcomes within a second
        code = report(rows, sandbox, outcomes(env, run), receipts, run)
        procs[-4].wait_for_log("console listening")
        print(f"\nConsole: {console_url}  (sign in as {DEMO_USER} / {DEMO_PASSWORD}, an operator)")
        if sys.stdin.isatty():
            input("demo: press Enter to stop everything (the console stays up until then) ")
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
