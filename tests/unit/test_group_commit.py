"""The group commit both sides use, on asyncio futures, with a fake statement."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
import pytest

from notify.group_commit import GroupCommit


class Statement:
    """Records each batch it is given; fails on any batch holding a `bad` item."""

    def __init__(self, error: Exception | None = None) -> None:
        self.batches: list[list[str]] = []
        self.error = error or ValueError("a value Postgres refused")

    async def __call__(self, items: Sequence[str]) -> None:
        self.batches.append(list(items))
        await asyncio.sleep(0.01)  # a round trip: others queue meanwhile
        if any(item.startswith("bad") for item in items):
            raise self.error


async def submit(commits: GroupCommit[str], items: list[str]) -> list[object]:
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in items]
    for item, future in zip(items, futures, strict=True):
        commits.add(item, future)
    return await asyncio.gather(*futures, return_exceptions=True)


def test_callers_that_queue_during_a_write_share_the_next_statement() -> None:
    statement = Statement()

    async def run() -> list[object]:
        commits = GroupCommit(statement, max_rows=50)
        loop = asyncio.get_running_loop()
        first = loop.create_future()
        commits.add("a", first)  # written at once, alone
        await asyncio.sleep(0)
        rest = await submit(commits, [f"r{n}" for n in range(120)])
        await commits.idle()
        return [await first, *rest]

    assert asyncio.run(run()) == [None] * 121
    assert [len(b) for b in statement.batches] == [1, 50, 50, 20]


def test_one_bad_item_fails_only_its_own_caller() -> None:
    statement = Statement()
    answers = asyncio.run(submit(GroupCommit(statement), ["a", "bad", "c"]))
    assert answers[0] is None and answers[2] is None
    assert isinstance(answers[1], ValueError)
    assert statement.batches == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]


def test_a_lost_connection_fails_the_whole_batch_for_each_caller_to_retry() -> None:
    statement = Statement(asyncpg.ConnectionDoesNotExistError("gone"))
    answers = asyncio.run(submit(GroupCommit(statement), ["a", "bad", "c"]))
    assert all(isinstance(a, asyncpg.ConnectionDoesNotExistError) for a in answers)
    assert statement.batches == [["a", "bad", "c"]]  # not retried one by one


def test_a_caller_that_gave_up_is_skipped() -> None:
    statement = Statement()

    async def run() -> None:
        commits = GroupCommit(statement)
        loop = asyncio.get_running_loop()
        gone, kept = loop.create_future(), loop.create_future()
        commits.add("a", gone)
        commits.add("b", kept)
        gone.cancel()
        assert await kept is None
        with pytest.raises(asyncio.CancelledError):
            await gone

    asyncio.run(run())
