"""The whole pipeline through a real PgBouncer in transaction pooling mode (CONTRACT section
10): `notify migrate`, the consumer, a worker, beat, `notify webhooks` and `notify status`
all reach Postgres only through it, with NOTIFY_DB_STATEMENT_CACHE_SIZE=0.

Two server connections are shared by every client, so a prepared statement or any session
state left on one would surface on another client's statement."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
import redis

from harness.launcher import free_port
from notify.database import drop_database, with_database
from tests.integration import processes
from tests.integration.helpers import SMS_AND_REMINDER, fetch, notify, publish, rows, shipment
from tests.integration.twilio_callbacks import PUBLIC_URL, TwilioCallbacks

pytestmark = pytest.mark.integration


def _config(listen: int, server: str, user: str) -> str:
    host = urlsplit(server).hostname or "127.0.0.1"
    port = urlsplit(server).port or 5432
    return f"""[databases]
* = host={host} port={port} user={user}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = 2
max_client_conn = 500
"""


@pytest.fixture
def bouncer_url(database_url: str, tmp_path: Path, procs: processes.Start) -> Iterator[str]:
    """An empty database of its own, reached through a PgBouncer on a free port."""
    binary = shutil.which("pgbouncer") or shutil.which("/usr/sbin/pgbouncer")
    if binary is None:
        pytest.fail("pgbouncer is not installed (make services installs it)")
    user = asyncio.run(_current_user(database_url))
    port = free_port()
    config = tmp_path / "pgbouncer.ini"
    config.write_text(_config(port, database_url, user))
    # It refuses to run as root; `-u` drops to postgres after reading its configuration.
    bouncer = procs(
        processes.Process("pgbouncer", [binary, "-u", "postgres", str(config)], {}, tmp_path)
    )
    bouncer.wait_for_log("process up")
    name = f"notify_bouncer_{uuid.uuid4().hex[:8]}"
    direct = with_database(database_url, name)
    asyncio.run(_create(database_url, name))
    yield with_database(f"postgresql://127.0.0.1:{port}/postgres", name)
    bouncer.stop()
    asyncio.run(drop_database(direct))


async def _current_user(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SELECT current_user"))
    finally:
        await conn.close()


async def _create(dsn: str, name: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def test_migrate_consume_send_remind_and_a_receipt_through_pgbouncer(
    bouncer_url: str,
    pipeline_env: dict[str, str],
    start_pipeline: processes.StartPipeline,
    start_webhooks: Callable[..., TwilioCallbacks],
    procs: processes.Start,
    tmp_path: Path,
    redis_client: redis.Redis,
) -> None:
    pooled = {"DATABASE_URL": bouncer_url, "NOTIFY_DB_STATEMENT_CACHE_SIZE": "0"}
    pipeline_env.update(pooled)
    migrated = notify(pipeline_env, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    versions = fetch(bouncer_url, "SELECT version FROM schema_migrations ORDER BY version")
    assert len(versions) >= 5

    env = start_pipeline(
        SMS_AND_REMINDER, NOTIFY_PUBLIC_URL=PUBLIC_URL, NOTIFY_SCHEDULE_INTERVAL_SECONDS="0.3"
    ).env
    procs(processes.beat(env, tmp_path)).wait_for_log("beat: Starting")
    twilio = start_webhooks()
    stream = env["NOTIFY_STREAM"]
    prefix = f"pgb-{stream}-"
    for n in range(20):
        publish(redis_client, stream, f"{prefix}{n}", "shipment.delayed", shipment(n), f"S-{n}")
    publish(redis_client, stream, f"{prefix}rem", "shipment.booked", shipment(99), "S-99")

    def sent() -> list[dict[str, object]]:
        return rows(bouncer_url, "event_id LIKE $1 AND status = 'sent'", prefix + "%")

    processes.wait_until(lambda: len(sent()) == 21, timeout=60, message="21 SMS sent")
    by_event = {r["event_id"]: r for r in sent()}
    assert by_event[f"{prefix}rem"]["send_at"] is not None  # the reminder went through beat

    sid = str(by_event[f"{prefix}0"]["provider_message_id"])
    assert twilio.status(sid, "delivered").status_code == 200
    processes.wait_until(
        lambda: rows(bouncer_url, "event_id = $1", f"{prefix}0")[0]["status"] == "delivered",
        message="the receipt settled the row",
    )
    status = notify(env, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["stream"] == stream
    for proc_log in tmp_path.glob("*.log"):
        assert "prepared statement" not in proc_log.read_text(errors="replace"), proc_log.name
