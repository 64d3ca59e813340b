"""A batch's counters, added once per label set, end where one increment per event left them;
a batch shared out over connections keeps what one insert decides together."""

from __future__ import annotations

from collections import Counter

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from consumer.batches import BatchResult, RoutedEvent, account, share_out
from consumer.metrics import EVENT_OUTCOMES
from notify.store import Inserted
from schemas import Channel, NewNotification, Status, ThrottleKey
from tests.profiles import examples

TYPES = ["shipment.delayed", "order.placed", "x.y"]
KEYS = ["k1", "k2", "k3", "k4", "k5"]


def note(key: str, channel: Channel, status: Status) -> NewNotification:
    return NewNotification(
        idempotency_key=key, event_id="e", event_type="t", event_subject=None, rule="r",
        channel=channel, recipient="x", body="b", status=status,
    )  # fmt: skip


def reference(
    per_event: list[tuple[str, list[str], bool]], inserted: set[str], rows: list[NewNotification]
) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]]]:
    """The increments as the consumer made them before: one per event, one per row."""
    events: Counter[tuple[str, str]] = Counter()
    fresh = set(inserted)
    for event_type, keys, matched in per_event:
        if not keys:
            outcome = "no_notifications" if matched else "unmatched"
        elif any(k in fresh for k in keys):
            outcome = "routed"
            fresh.difference_update(keys)
        else:
            outcome = "duplicate"
        events[event_type, outcome] += 1
    inserts: Counter[tuple[str, str]] = Counter()
    for row in rows:
        if row.idempotency_key in inserted:
            inserts[row.channel.value, row.status.value] += 1
    return events, inserts


def events_total(event_type: str, outcome: str) -> float:
    labels = {"type": event_type, "outcome": outcome}
    return REGISTRY.get_sample_value("notify_events_total", labels) or 0.0


def inserted_total(channel: str, status: str) -> float:
    labels = {"channel": channel, "status": status}
    return REGISTRY.get_sample_value("notify_notifications_inserted_total", labels) or 0.0


@settings(max_examples=examples(300), deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(TYPES), st.lists(st.sampled_from(KEYS), max_size=3), st.booleans()
        )
    ),
    st.sets(st.sampled_from(KEYS)),
    st.lists(
        st.tuples(
            st.sampled_from(KEYS),
            st.sampled_from(list(Channel)),
            st.sampled_from([Status.PENDING, Status.SCHEDULED, Status.FAILED]),
        ),
        max_size=8,
    ),
)
def test_counters_and_outcomes_are_those_of_one_increment_per_event(
    per_event: list[tuple[str, list[str], bool]],
    inserted: set[str],
    row_specs: list[tuple[str, Channel, Status]],
) -> None:
    rows = [note(*spec) for spec in row_specs]
    events, inserts = reference(per_event, inserted, rows)
    event_labels = {(t, o) for t in TYPES for o in EVENT_OUTCOMES}
    insert_labels = {(c.value, s.value) for _, c, s in row_specs}
    before_events = {lv: events_total(*lv) for lv in event_labels}
    before_inserts = {lv: inserted_total(*lv) for lv in insert_labels}
    result = BatchResult()
    stored = Inserted([], inserted, 0)
    routed = [RoutedEvent(t, "e", keys, [], matched) for t, keys, matched in per_event]
    account(result, routed, stored, rows, [], 0)
    for lv in event_labels:
        assert events_total(*lv) - before_events[lv] == events[lv]
    for lv in insert_labels:
        assert inserted_total(*lv) - before_inserts[lv] == inserts[lv]
    outcomes: Counter[str] = Counter()
    for (_, outcome), count in events.items():
        outcomes[outcome] += count
    assert result.outcomes == outcomes


@settings(max_examples=examples(300), deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["e1", "e2", "e3"]),
            st.sampled_from(["r1", "r2"]),
            st.sampled_from(["+14155550100", "+14155550101", "tok"]),
            st.none() | st.sampled_from(["SHP-1", "SHP-2"]),
        ),
        max_size=30,
    ),
    st.integers(1, 4),
)
def test_shares_keep_each_key_and_throttle_group_whole_and_in_order(
    specs: list[tuple[str, str, str, str | None]], parts: int
) -> None:
    """What lets a batch go to Postgres over several connections (insert_shared)."""
    rows = [
        msgspec.structs.replace(
            note(f"{event}|{rule}|{recipient}", Channel.SMS, Status.PENDING),
            event_id=event, rule=rule, recipient=recipient,
            throttle=None if key is None else ThrottleKey(key=key, limit=1, window_seconds=60),
        )
        for event, rule, recipient, key in specs
    ]  # fmt: skip
    shares = share_out(rows, parts)
    assert len(shares) <= parts and all(shares)
    position = {id(row): i for i, row in enumerate(rows)}
    assert sorted(position[id(r)] for share in shares for r in share) == list(range(len(rows)))
    for share in shares:
        assert [position[id(r)] for r in share] == sorted(position[id(r)] for r in share)
    share_of = {id(r): n for n, share in enumerate(shares) for r in share}
    for a in rows:
        for b in rows:
            same_key = a.idempotency_key == b.idempotency_key
            same_group = (
                a.throttle is not None
                and b.throttle is not None
                and (a.rule, a.throttle.key, a.recipient) == (b.rule, b.throttle.key, b.recipient)
            )
            if same_key or same_group:
                assert share_of[id(a)] == share_of[id(b)]
