"""Which group consumers a live one removes (consumer/hygiene.py): a pure decision."""

from __future__ import annotations

from consumer.hygiene import Member, reapable


def test_only_idle_consumers_holding_nothing_and_never_itself() -> None:
    members = [
        Member("me", 0, 10_000),
        Member("stale", 0, 5_000),
        Member("holder", 3, 9_000_000),
        Member("busy", 0, 999),
        Member("edge", 0, 1_000),
    ]
    assert reapable(members, own="me", idle_ms=1_000) == ["stale", "edge"]


def test_nothing_to_remove_in_a_healthy_group() -> None:
    assert reapable([Member("a", 1, 5), Member("b", 0, 5)], own="a", idle_ms=3_600_000) == []
