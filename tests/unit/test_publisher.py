"""Hand-built task messages are exactly what kombu's Redis transport and a Celery worker expect."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import fakeredis
import pytest
import pytest_asyncio
from celery import Celery
from celery.worker.request import Request
from kombu import Connection
from pytest_mock import MockerFixture

from consumer.loop import redis_broker
from consumer.task_publisher import (
    CeleryPublisher,
    TaskPublisher,
    make_publisher,
    task_message,
    task_messages,
)
from notify import redis_clients
from notify.brokers import broker_options
from notify.settings import Settings
from notify.task_names import SEND_BATCH as BATCH_TASK
from notify.task_names import SEND_ONE, batches

EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def redis_transport_decode(raw: bytes) -> tuple[dict[str, Any], list[Any]]:
    """What kombu's Redis transport does with a popped item: JSON, then the base64 body."""
    message = json.loads(raw)
    assert message["properties"]["body_encoding"] == "base64"
    return message, json.loads(base64.b64decode(message["body"]))


@pytest.fixture
def celery_app() -> Celery:
    """A stock Celery app with stand-ins for our task names, recording what they were given."""
    app = Celery("unit", broker="memory://", set_as_current=False)
    app.conf.task_ignore_result = True
    app.calls = []  # type: ignore[attr-defined]
    for name in [*SEND_ONE.values(), BATCH_TASK]:

        def run(*args: Any, _name: str = name) -> None:
            app.calls.append((_name, list(args)))  # type: ignore[attr-defined]

        app.task(name=name, ignore_result=True, shared=False)(run)
    return app


@pytest.fixture
def reference_message(celery_app: Celery) -> Callable[[str, list[Any]], dict[str, Any]]:
    """A message as Celery itself stores it through a kombu virtual transport."""

    def make(task: str, args: list[Any]) -> dict[str, Any]:
        queue = f"ref-{uuid.uuid4()}"
        celery_app.send_task(task, args=args, queue=queue)
        with celery_app.connection_for_write() as conn:
            message: dict[str, Any] = conn.default_channel._get(queue)
        return message

    return make


@pytest.fixture
def server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest_asyncio.fixture
async def client(server: fakeredis.FakeServer) -> AsyncIterator[fakeredis.FakeAsyncRedis]:
    redis = fakeredis.FakeAsyncRedis(server=server)
    yield redis
    await redis.aclose()


@pytest.fixture
def kombu_redis(server: fakeredis.FakeServer, mocker: MockerFixture) -> Iterator[Connection]:
    """kombu's own Redis transport, talking to the same fake server as our publisher."""
    sync = fakeredis.FakeRedis(server=server)
    mocker.patch("kombu.transport.redis.Channel._create_client", return_value=sync)
    with Connection("redis://localhost:1/0") as conn:
        yield conn
    sync.close()


# --- the message format ---------------------------------------------------------------------------


def test_the_message_decodes_as_the_redis_transport_does() -> None:
    message, body = redis_transport_decode(
        task_message("tasks.send_sms", [42], "notify-q", task_id="t-1")
    )
    assert body == [[42], {}, EMBED]
    assert (message["content-type"], message["content-encoding"]) == ("application/json", "utf-8")
    headers = message["headers"]
    assert headers["lang"] == "py"
    assert (headers["task"], headers["id"], headers["root_id"], headers["parent_id"]) == (
        "tasks.send_sms",
        "t-1",
        "t-1",
        None,
    )
    assert (headers["retries"], headers["eta"], headers["expires"]) == (0, None, None)
    assert (headers["argsrepr"], headers["kwargsrepr"]) == ("[42]", "{}")
    assert headers["timelimit"] == [None, None]
    props = message["properties"]
    assert props["delivery_info"] == {"exchange": "", "routing_key": "notify-q"}
    assert (props["body_encoding"], props["correlation_id"], props["delivery_mode"]) == (
        "base64",
        "t-1",
        2,
    )
    assert props["priority"] == 0
    assert uuid.UUID(props["delivery_tag"]) and props["delivery_tag"] != "t-1"


def test_ids_and_delivery_tags_are_fresh_uuids_per_message() -> None:
    messages = [
        redis_transport_decode(task_message("tasks.send_push", [n], "q"))[0] for n in (1, 2)
    ]
    ids = [m["headers"]["id"] for m in messages]
    tags = [m["properties"]["delivery_tag"] for m in messages]
    assert len(set(ids + tags)) == 4
    for message in messages:
        assert uuid.UUID(message["headers"]["id"]).version == 4
        assert message["headers"]["root_id"] == message["headers"]["id"]
        assert message["properties"]["correlation_id"] == message["headers"]["id"]


@pytest.mark.parametrize(
    ("task", "args"), [("tasks.send_sms", [42]), ("tasks.send_batch", ["push", [1, 2, 3]])]
)
def test_key_sets_match_a_message_celery_produced(
    reference_message: Callable[[str, list[Any]], dict[str, Any]], task: str, args: list[Any]
) -> None:
    ours, body = redis_transport_decode(task_message(task, args, "q"))
    theirs = reference_message(task, args)
    assert set(ours) == set(theirs)
    assert set(ours["headers"]) == set(theirs["headers"])
    assert set(ours["properties"]) == set(theirs["properties"])
    assert set(ours["properties"]["delivery_info"]) == set(theirs["properties"]["delivery_info"])
    assert body == json.loads(base64.b64decode(theirs["body"]))
    assert ours["headers"]["argsrepr"] == theirs["headers"]["argsrepr"]
    for key in ("lang", "task", "retries", "eta", "expires", "shadow", "timelimit", "kwargsrepr"):
        assert ours["headers"][key] == theirs["headers"][key], key


def test_a_stock_worker_request_runs_the_task(celery_app: Celery, kombu_redis: Connection) -> None:
    raw = task_message("tasks.send_sms", [42], "notify-q", task_id="t-9")
    channel = kombu_redis.default_channel
    message = channel.message_to_python(json.loads(raw))
    assert message.decode() == [[42], {}, EMBED]
    request = Request(message, app=celery_app)
    assert (request.id, request.name, request.args, request.kwargs) == (
        "t-9",
        "tasks.send_sms",
        [42],
        {},
    )
    assert request.delivery_info["routing_key"] == "notify-q"
    request.execute()
    assert celery_app.calls == [("tasks.send_sms", [42])]  # type: ignore[attr-defined]


# --- batching -------------------------------------------------------------------------------------


def test_batches_group_by_channel_keeping_order_and_size() -> None:
    rows = [(1, "sms"), (2, "push"), (3, "sms"), (4, "sms"), (5, "push"), (6, "sms")]
    assert batches(rows, 2) == [("sms", [1, 3]), ("sms", [4, 6]), ("push", [2, 5])]
    assert batches(rows, 100) == [("sms", [1, 3, 4, 6]), ("push", [2, 5])]
    assert batches([], 10) == []


def test_one_message_per_row_without_batching() -> None:
    rows = [(1, "sms"), (2, "push"), (3, "sms")]
    decoded = [redis_transport_decode(m) for m in task_messages(rows, "q", 1)]
    assert [(m["headers"]["task"], body[0]) for m, body in decoded] == [
        ("tasks.send_sms", [1]),
        ("tasks.send_push", [2]),
        ("tasks.send_sms", [3]),
    ]


def test_batch_messages_carry_the_channel_and_ids() -> None:
    rows = [(n, "sms") for n in range(1, 6)] + [(9, "push")]
    decoded = [redis_transport_decode(m) for m in task_messages(rows, "q", 2)]
    assert [(m["headers"]["task"], body[0]) for m, body in decoded] == [
        (BATCH_TASK, ["sms", [1, 2]]),
        (BATCH_TASK, ["sms", [3, 4]]),
        (BATCH_TASK, ["sms", [5]]),
        (BATCH_TASK, ["push", [9]]),
    ]


# --- publishing onto Redis ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_publish_pushes_one_lpush_per_thousand_messages(
    client: fakeredis.FakeAsyncRedis, mocker: MockerFixture
) -> None:
    lpush = mocker.spy(client, "lpush")
    await TaskPublisher(client, "notify-q").publish([(n, "sms") for n in range(2500)])
    assert [len(call.args) - 1 for call in lpush.call_args_list] == [1000, 1000, 500]
    assert all(call.args[0] == "notify-q" for call in lpush.call_args_list)
    assert await client.llen("notify-q") == 2500


@pytest.mark.asyncio
async def test_messages_come_out_first_in_first_out_as_kombu_pops_them(
    client: fakeredis.FakeAsyncRedis,
) -> None:
    await TaskPublisher(client, "q").publish([(n, "sms") for n in range(2100)])
    popped = []
    while (raw := await client.rpop("q")) is not None:  # kombu's BRPOP takes from the right
        popped.append(redis_transport_decode(raw)[1][0][0])
    assert popped == list(range(2100))


@pytest.mark.asyncio
async def test_publishing_nothing_sends_nothing(
    client: fakeredis.FakeAsyncRedis, mocker: MockerFixture
) -> None:
    lpush = mocker.spy(client, "lpush")
    await TaskPublisher(client, "q").publish([])
    lpush.assert_not_called()


@pytest.mark.asyncio
async def test_batched_publishing(client: fakeredis.FakeAsyncRedis) -> None:
    await TaskPublisher(client, "q", batch_size=50).publish([(n, "push") for n in range(120)])
    bodies = [redis_transport_decode(m)[1][0] for m in reversed(await client.lrange("q", 0, -1))]
    assert bodies == [["push", list(range(0, 50))], ["push", list(range(50, 100))],
                      ["push", list(range(100, 120))]]  # fmt: skip


@pytest.mark.asyncio
async def test_kombus_redis_channel_reads_and_acks_what_we_published(
    client: fakeredis.FakeAsyncRedis, kombu_redis: Connection, celery_app: Celery
) -> None:
    await TaskPublisher(client, "notify-q").publish([(1, "sms"), (2, "push")])
    channel = kombu_redis.default_channel
    first = channel.basic_get("notify-q")
    second = channel.basic_get("notify-q")
    assert channel.basic_get("notify-q") is None
    assert [m.headers["task"] for m in (first, second)] == ["tasks.send_sms", "tasks.send_push"]
    for message in (first, second):
        Request(message, app=celery_app).execute()
        message.ack()
    assert celery_app.calls == [("tasks.send_sms", [1]), ("tasks.send_push", [2])]  # type: ignore[attr-defined]
    assert await client.llen("notify-q") == 0


@pytest.mark.parametrize(
    ("broker", "kind"),
    [
        ("redis://localhost:6379/0", TaskPublisher),
        ("rediss://cache:6380/0", TaskPublisher),
        ("unix:///run/redis.sock", TaskPublisher),
        ("amqp://guest@rabbit//", CeleryPublisher),
    ],
)
def test_make_publisher_uses_the_fast_path_only_for_redis(broker: str, kind: type) -> None:
    settings = Settings(broker_url=broker, task_queue="notify-q", task_batch_size=7)
    publisher = make_publisher(settings, fakeredis.FakeAsyncRedis())
    assert isinstance(publisher, kind)
    assert (publisher.queue, publisher.batch_size) == ("notify-q", 7)  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_publisher_pushes_fifo_for_brpop_in_chunks() -> None:
    client = fakeredis.FakeAsyncRedis()
    publisher = TaskPublisher(client, "q", batch_size=1)
    await publisher.publish([(n, "sms") for n in range(2500)])  # more than one LPUSH of 1000
    assert await client.llen("q") == 2500
    # kombu pops with BRPOP from the right: the first published comes out first.
    first = await client.rpop("q")
    assert redis_transport_decode(first)[1][0] == [0]  # type: ignore[arg-type]
    await client.aclose()


@pytest.mark.parametrize(
    ("broker", "redis_cluster", "fast"),
    [
        ("redis://localhost:6379/0", False, "shared"),
        ("redis://localhost:6379/3", False, "own"),
        ("redis://localhost:6379/0", True, "own"),  # the broker is never the cluster
        ("amqp://guest:guest@localhost:5672/notify", False, None),
    ],
)
def test_the_consumer_opens_a_redis_broker_client_only_for_a_redis_broker(
    broker: str, redis_cluster: bool, fast: str | None
) -> None:
    settings = Settings(broker_url=broker, redis_cluster=redis_cluster)
    # Neither client connects before its first command.
    events = redis_clients.async_client(settings) if redis_cluster else fakeredis.FakeAsyncRedis()
    client = redis_broker(settings, events)
    kind = None if client is None else ("shared" if client is events else "own")
    assert kind == fast


def test_amqp_brokers_publish_with_confirms_and_redis_brokers_keep_a_visibility_timeout() -> None:
    amqp = broker_options("amqp://guest@rabbit//", 300.0)["broker_transport_options"]
    assert amqp == {"confirm_publish": True}
    redis_options = broker_options("redis://localhost/0", 300.0)["broker_transport_options"]
    assert redis_options == {"visibility_timeout": 300.0}
    publisher = CeleryPublisher("amqp://guest@rabbit//", "q")
    assert publisher.app.conf.broker_transport_options == {"confirm_publish": True}
