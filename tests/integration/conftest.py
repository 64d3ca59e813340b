"""Integration fixtures: a throwaway database, unique stream and queue names, the emulators."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
import redis

from harness.launcher import ThrowawayDatabase, emulator_env, free_port
from notify.store import OutcomeStore
from sandbox import Sandbox
from sandbox.google.credentials import write_service_account
from tests.conftest import DATABASE_URL, REDIS_URL, require_services
from tests.integration import processes
from tests.integration.twilio_callbacks import PUBLIC_URL, TwilioCallbacks

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A fresh database per test file, dropped at its end. Files run in parallel and in any
    order (pytest-xdist): beat's jobs act on every row they find (the sweeper resends stuck
    rows, the price backfill asks about unpriced ones), so no file may see another's rows."""
    require_services()
    database = ThrowawayDatabase(DATABASE_URL, "notify_test").create()
    yield database.url
    database.drop()


@pytest.fixture
def own_database() -> Iterator[str]:
    """A database for one test alone, for tests whose beat jobs act on every row they find
    (the sweeper, the price backfill): the session's database holds other tests' rows."""
    require_services()
    database = ThrowawayDatabase(DATABASE_URL, "notify_own").create()
    yield database.url
    database.drop()


@pytest.fixture(autouse=True)
def no_suppression_outlives_its_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """The session shares one database, and a suppression would skip a later test's sends
    (a 21610 in one test suppresses a number the fault tests text again). Torn down after
    the test's processes have stopped, so none adds one afterwards."""
    yield
    if "database_url" not in request.fixturenames:
        return
    url = request.getfixturevalue("database_url")

    async def forget() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("TRUNCATE suppressions, suppression_events")
        finally:
            await conn.close()

    asyncio.run(forget())


@pytest_asyncio.fixture
async def store(database_url: str) -> AsyncIterator[OutcomeStore]:
    """The outcome store on the session's database, a small pool (a module that needs
    more connections, or a database of its own, defines its own `store`)."""
    s = await OutcomeStore.connect(database_url, min_size=1, max_size=4)
    yield s
    await s.close()


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox() as sb:
        yield sb


@pytest.fixture(scope="session")
def service_account(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("creds") / "serviceAccountKey.json"
    return write_service_account(path, sandbox.token_uri, project_id="test-project")


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    require_services()
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def rules_file(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        path = tmp_path / "rules.yaml"
        path.write_text(text)
        return path

    return write


@pytest.fixture
def pipeline_env(
    database_url: str,
    sandbox: Sandbox,
    service_account: Path,
    redis_client: redis.Redis,
    tmp_path: Path,
) -> Iterator[dict[str, str]]:
    """Environment for one test's processes: unique stream, group, queue; cleaned up after."""
    sandbox.reset()
    env = environment(database_url, sandbox, service_account, tmp_path / "rules.yaml")
    yield env
    redis_client.delete(*redis_keys(env))


def environment(
    database_url: str, sandbox: Sandbox, service_account: Path, rules: Path
) -> dict[str, str]:
    """Settings for one set of processes, on a stream, queue and outcomes stream of its own."""
    tag = uuid.uuid4().hex[:8]
    stream, queue, outcomes = f"test-events-{tag}", f"test-q-{tag}", f"test-outcomes-{tag}"
    return {
        **os.environ,
        "REDIS_URL": REDIS_URL,
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_RESULT_BACKEND": REDIS_URL,
        "DATABASE_URL": database_url,
        "NOTIFY_STREAM": stream,
        "NOTIFY_GROUP": "notifications",
        "NOTIFY_TASK_QUEUE": queue,
        "NOTIFY_OUTCOMES_STREAM": outcomes,
        "NOTIFY_RULES": str(rules),
        "NOTIFY_METRICS_PORT": "0",
        "NOTIFY_WORKER_METRICS_PORT": "0",
        "NOTIFY_RULES_POLL_SECONDS": "0.2",
        "NOTIFY_BLOCK_MS": "200",
        "NOTIFY_RETRY_BASE_SECONDS": "0.05",
        "NOTIFY_RETRY_MAX_SECONDS": "0.5",
        # Lookups after a lost answer wait this long for Twilio's list (production: 300).
        "NOTIFY_RECONCILE_WAIT_SECONDS": "1",
        **emulator_env(sandbox.url, service_account),
        "NOTIFY_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }


def redis_keys(env: dict[str, str]) -> list[str]:
    """What a set of processes leaves in Redis under the names `environment` chose."""
    stream, queue = env["NOTIFY_STREAM"], env["NOTIFY_TASK_QUEUE"]
    return [
        stream,
        f"{stream}.dlq",
        queue,
        f"_kombu.binding.{queue}",
        env["NOTIFY_OUTCOMES_STREAM"],
    ]


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[processes.Start]:
    """Start processes through this; every one is stopped at teardown, and its log kept."""
    started: list[processes.Process] = []

    def start(proc: processes.Process) -> processes.Process:
        started.append(proc.start())
        return proc

    yield start
    for proc in reversed(started):
        proc.stop()
    keep = os.environ.get("NOTIFY_TEST_LOGS")
    if keep:
        shutil.copytree(tmp_path, Path(keep) / tmp_path.name, dirs_exist_ok=True)


@pytest.fixture
def start_pipeline(
    pipeline_env: dict[str, str],
    rules_file: Callable[[str], Path],
    procs: processes.Start,
    tmp_path: Path,
) -> processes.StartPipeline:
    """`start_pipeline(rules, pool=..., concurrency=..., NOTIFY_X="1")`: a worker and a
    consumer, ready, on these rules (default: the shared test rules) and settings."""
    from tests.integration.helpers import RULES

    def start(
        rules: str = RULES, *, pool: str = "threads", concurrency: int = 8, **settings: str
    ) -> processes.Pipeline:
        rules_file(rules)
        pipeline_env.setdefault("NOTIFY_MAX_SEND_ATTEMPTS", "4")
        pipeline_env.update(settings)
        worker = procs(processes.worker(pipeline_env, tmp_path, concurrency=concurrency, pool=pool))
        worker.wait_for_log("ready")
        consumer = procs(processes.consumer(pipeline_env, tmp_path))
        consumer.wait_for_log("consumer started")
        return processes.Pipeline(pipeline_env, worker, consumer)

    return start


@pytest.fixture(scope="module")
def module_pipeline(
    database_url: str,
    sandbox: Sandbox,
    service_account: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[processes.Pipeline]:
    """One worker and consumer for a whole module, on the shared test rules and default
    settings: starting them is most of a short test's time. Its tests tell their rows apart
    by event id, as they already do in the session's one database."""
    from tests.integration.helpers import RULES

    logs = tmp_path_factory.mktemp("pipeline")
    rules = logs / "rules.yaml"
    rules.write_text(RULES)
    env = {**environment(database_url, sandbox, service_account, rules),
           "NOTIFY_MAX_SEND_ATTEMPTS": "4"}  # fmt: skip
    client = redis.Redis.from_url(REDIS_URL)
    started: list[processes.Process] = []
    try:
        worker = processes.worker(env, logs, concurrency=8, pool="threads")
        started.append(worker.start())
        worker.wait_for_log("ready")
        consumer = processes.consumer(env, logs)
        started.append(consumer.start())
        consumer.wait_for_log("consumer started")
        yield processes.Pipeline(env, worker, consumer)
    finally:
        for proc in reversed(started):
            proc.stop()
        client.delete(*redis_keys(env))
        client.close()
        keep = os.environ.get("NOTIFY_TEST_LOGS")
        if keep:
            shutil.copytree(logs, Path(keep) / logs.name, dirs_exist_ok=True)


@pytest.fixture
def running(module_pipeline: processes.Pipeline, sandbox: Sandbox) -> dict[str, str]:
    """The module's worker and consumer (module_pipeline), with the emulators emptied as
    pipeline_env empties them. Its env is not pipeline_env's: a test that starts processes
    of its own, or other settings, uses start_pipeline instead."""
    sandbox.reset()
    return module_pipeline.env


@pytest.fixture
def start_webhooks(
    pipeline_env: dict[str, str], procs: processes.Start, tmp_path: Path
) -> Callable[..., TwilioCallbacks]:
    """`start_webhooks(NOTIFY_X="1")`: a `notify webhooks` process, ready, and a client that
    signs like Twilio over NOTIFY_PUBLIC_URL (not the address it listens on)."""

    def start(name: str = "webhooks", **settings: str) -> TwilioCallbacks:
        port = free_port()
        env = {
            **pipeline_env,
            "NOTIFY_PUBLIC_URL": PUBLIC_URL,
            "NOTIFY_WEBHOOK_HOST": "127.0.0.1",
            "NOTIFY_WEBHOOK_PORT": str(port),
            **settings,
        }
        proc = procs(processes.webhooks(env, tmp_path, name))
        proc.wait_for_log("webhooks listening")
        return TwilioCallbacks(f"http://127.0.0.1:{port}", process=proc)

    return start
