"""Throttle decisions as pure functions: which rows of a batch fit in their window."""

from __future__ import annotations

from notify.throttles import THROTTLED, candidates, groups, over_limit, skipped
from schemas import Channel, NewNotification, Status, ThrottleKey


def row(key: str, recipient: str = "+14155550100", idem: str | None = None,
        limit: int = 1, throttled: bool = True) -> NewNotification:  # fmt: skip
    return NewNotification(
        idempotency_key=idem or f"{key}-{recipient}-{id(object())}",
        event_id="e", event_type="shipment.delayed", event_subject=key, rule="late",
        channel=Channel.SMS, recipient=recipient, body="late",
        throttle=ThrottleKey(key=key, limit=limit, window_seconds=1800) if throttled else None,
    )  # fmt: skip


def decide(rows: list[NewNotification], counted_before: dict[str, int],
           stored: frozenset[str] = frozenset()) -> set[int]:  # fmt: skip
    """What the upsert would return, given the counts already in the window per key."""
    by_group = groups(candidates(rows, stored))
    totals = {g: counted_before.get(g[1], 0) + len(m) for g, m in by_group.items()}
    return over_limit(by_group, totals)


def test_the_first_of_a_key_passes_and_the_rest_of_the_batch_does_not() -> None:
    rows = [row("SHP-1", idem="a"), row("SHP-1", idem="b"), row("SHP-1", idem="c")]
    assert decide(rows, {}) == {1, 2}


def test_a_key_already_at_its_limit_throttles_every_new_row() -> None:
    assert decide([row("SHP-1", idem="a")], {"SHP-1": 1}) == {0}


def test_keys_and_recipients_are_counted_apart() -> None:
    rows = [row("SHP-1", idem="a"), row("SHP-2", idem="b"),
            row("SHP-1", "+14155550101", idem="c"), row("SHP-1", idem="d")]  # fmt: skip
    assert decide(rows, {}) == {3}


def test_a_limit_of_two_lets_two_through_in_stream_order() -> None:
    rows = [row("SHP-1", idem=x, limit=2) for x in "abcd"]
    assert decide(rows, {}) == {2, 3}
    assert decide(rows, {"SHP-1": 1}) == {1, 2, 3}


def test_rows_already_stored_and_repeated_keys_are_not_counted_again() -> None:
    # A redelivered event ("a" is stored) and the same event twice in one batch ("b").
    rows = [row("SHP-1", idem="a"), row("SHP-1", idem="b"), row("SHP-1", idem="b")]
    found = candidates(rows, frozenset({"a"}))
    assert [c.index for c in found] == [1]
    assert decide(rows, {"SHP-1": 1}, frozenset({"a"})) == {1}


def test_unthrottled_rows_are_never_candidates() -> None:
    assert candidates([row("SHP-1", throttled=False)]) == []


def test_a_throttled_row_is_skipped_with_its_reason() -> None:
    out = skipped(row("SHP-1", limit=1))
    assert (out.status, out.error_code) == (Status.SKIPPED, THROTTLED)
    assert out.error_message == "at most 1 per 1800s for key 'SHP-1' and this recipient"
