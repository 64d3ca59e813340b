"""Our pipelined task messages are what kombu/Celery produce and consume."""

from __future__ import annotations

import base64
import json
from typing import Any

import fakeredis
import pytest
from celery import Celery
from pytest_mock import MockerFixture

from consumer.task_publisher import TaskPublisher, batches, task_message, task_messages


def decode(raw: bytes) -> tuple[dict[str, Any], list[Any]]:
    message = json.loads(raw)
    return message, json.loads(base64.b64decode(message["body"]))


def celery_message(mocker: MockerFixture) -> dict[str, Any]:
    """A message as stock Celery hands it to a kombu virtual transport (Redis is one)."""
    put = mocker.patch("kombu.transport.memory.Channel._put")
    app = Celery("tasks", broker="memory://")
    app.send_task("tasks.send_sms", args=[42])
    message: dict[str, Any] = put.call_args.args[1]
    return message


def test_the_message_has_celerys_shape_and_body(mocker: MockerFixture) -> None:
    message, body = decode(task_message("tasks.send_sms", [42], "notify-q", task_id="t-1"))
    assert body == [[42], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}]
    headers, props = message["headers"], message["properties"]
    assert (headers["task"], headers["id"], headers["root_id"], headers["retries"]) == (
        "tasks.send_sms",
        "t-1",
        "t-1",
        0,
    )
    assert headers["argsrepr"] == "[42]"
    assert props["delivery_info"] == {"exchange": "", "routing_key": "notify-q"}
    assert (props["body_encoding"], props["correlation_id"]) == ("base64", "t-1")
    assert message["content-type"] == "application/json"
    reference = celery_message(mocker)
    assert set(headers) == set(reference["headers"])
    assert set(props) == set(reference["properties"])
    assert set(message) == set(reference)


def test_batches_group_by_channel_in_order() -> None:
    rows = [(1, "sms"), (2, "push"), (3, "sms"), (4, "sms"), (5, "push")]
    assert batches(rows, 2) == [("sms", [1, 3]), ("sms", [4]), ("push", [2, 5])]
    singles = [decode(m)[0]["headers"]["task"] for m in task_messages(rows, "q", 1)]
    assert singles == ["tasks.send_sms", "tasks.send_push", "tasks.send_sms", "tasks.send_sms",
                       "tasks.send_push"]  # fmt: skip
    [batch] = [decode(m)[1][0] for m in task_messages(rows[:1], "q", 50)]
    assert batch == ["sms", [1]]


@pytest.mark.asyncio
async def test_publisher_pushes_fifo_for_brpop() -> None:
    client = fakeredis.FakeAsyncRedis()
    publisher = TaskPublisher(client, "q", batch_size=1)
    await publisher.publish([(n, "sms") for n in range(2500)])
    assert await client.llen("q") == 2500
    # kombu pops with BRPOP from the right: the first published comes out first.
    first = await client.rpop("q")
    assert decode(first)[1][0] == [0]  # type: ignore[arg-type]
    await client.aclose()
