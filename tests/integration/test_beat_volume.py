"""Beat and the sweeper at volume, and beat as a singleton: real Postgres, the real Redis
broker, real beat processes."""

from __future__ import annotations

import base64
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from notify.settings import Settings
from notify.task_names import SEND_BATCH
from tasks.app import NotifyCelery
from tasks.db import StoreRunner
from tasks.schedule import dispatch, publisher, requeue_lost
from tests.integration import processes
from tests.integration.helpers import fetch

pytestmark = pytest.mark.integration

TAG = f"vol{uuid.uuid4().hex[:6]}-"


@pytest.fixture
def db(database_url: str) -> Iterator[StoreRunner]:
    runner = StoreRunner(database_url, max_size=2)
    yield runner
    runner.close()
    fetch(database_url, "DELETE FROM notifications WHERE event_id LIKE $1", f"{TAG}%")


def add_rows(database_url: str, prefix: str, count: int, status: str, age: float) -> None:
    """`count` rows, half SMS and half push; `age` back in send_at and updated_at."""
    fetch(
        database_url,
        """INSERT INTO notifications (idempotency_key, event_id, event_type, rule, channel,
               recipient, body, status, send_at, updated_at)
           SELECT $1 || g, $1 || g, 'shipment.delayed', 'volume',
               CASE WHEN g % 2 = 0 THEN 'sms' ELSE 'push' END,
               '+1415555' || lpad((g % 10000)::text, 4, '0'), 'due', $3,
               now() - make_interval(secs => $4), now() - make_interval(secs => $4)
           FROM generate_series(1, $2) AS g""",
        prefix,
        count,
        status,
        age,
    )


def queued(client: redis.Redis, queue: str) -> list[tuple[str, list[Any]]]:
    """The broker's messages on `queue`: (task name, args), as a worker would read them."""
    found = []
    for raw in client.lrange(queue, 0, -1):
        message = json.loads(raw)
        args = json.loads(base64.b64decode(message["body"]))[0]
        found.append((message["headers"]["task"], args))
    return found


def ids_of(database_url: str, prefix: str, status: str) -> set[int]:
    sql = "SELECT id FROM notifications WHERE event_id LIKE $1 AND status = $2"
    return {r["id"] for r in fetch(database_url, sql, f"{prefix}%", status)}


def check_batches(messages: list[tuple[str, list[Any]]], ours: set[int], size: int) -> None:
    """Each of `ours` in exactly one `send_batch` message of at most `size` ids."""
    assert {task for task, _ in messages} == {SEND_BATCH}
    assert max(len(ids) for _, ids in messages) <= size
    published = Counter(i for _, (_, ids) in messages for i in ids)
    assert {i for i in ours if published[i] == 1} == ours


def test_100k_due_reminders_go_out_as_send_batch_messages(
    pipeline_env: dict[str, str], db: StoreRunner, redis_client: redis.Redis, database_url: str
) -> None:
    count, prefix = 100_000, f"{TAG}due-"
    add_rows(database_url, prefix, count, "scheduled", 1.0)
    settings = Settings.from_env(pipeline_env)
    size = settings.task_batch_size
    done = dispatch(db, settings, publisher(NotifyCelery(settings), size))
    assert done >= count
    ours = ids_of(database_url, prefix, "pending")
    assert len(ours) == count  # one run, every due row
    messages = queued(redis_client, settings.task_queue)
    check_batches(messages, ours, size)
    assert len(messages) <= count // size + 2 * (count // 5000 + 1)  # not one task per row


def test_a_sweep_requeues_20k_lost_tasks_in_one_pass(
    pipeline_env: dict[str, str], db: StoreRunner, redis_client: redis.Redis, database_url: str
) -> None:
    count, prefix = 20_000, f"{TAG}lost-"
    add_rows(database_url, prefix, count, "pending", 3600.0)
    settings = Settings.from_env({**pipeline_env, "NOTIFY_STUCK_SECONDS": "600"})
    size = settings.task_batch_size
    assert requeue_lost(db, settings, publisher(NotifyCelery(settings), size)) >= count
    ours = ids_of(database_url, prefix, "pending")
    messages = queued(redis_client, settings.task_queue)
    check_batches(messages, ours, size)
    stale = fetch(
        database_url,
        "SELECT count(*) AS n FROM notifications WHERE event_id LIKE $1"
        " AND updated_at < now() - interval '10 minutes'",
        f"{prefix}%",
    )
    assert stale == [{"n": 0}]  # every one touched: the next sweep leaves them alone


def sent_by(beat: processes.Process) -> int:
    return beat.log().count("Sending due task dispatch-due")


def test_a_second_beat_stands_by_and_takes_over_when_the_first_stops(
    pipeline_env: dict[str, str], procs: processes.Start, tmp_path: Path
) -> None:
    env = {**pipeline_env, "NOTIFY_SCHEDULE_INTERVAL_SECONDS": "0.3"}
    first = procs(processes.beat(env, tmp_path, "beat-1"))
    first.wait_for_log("beat lock taken")
    second = procs(processes.beat(env, tmp_path, "beat-2"))
    second.wait_for_log("standing by")
    processes.wait_until(lambda: sent_by(first) >= 5, timeout=30, message="the first beat ticks")
    assert sent_by(second) == 0
    first.stop()
    second.wait_for_log("beat lock taken")
    processes.wait_until(lambda: sent_by(second) >= 1, timeout=30, message="the second ticks")
