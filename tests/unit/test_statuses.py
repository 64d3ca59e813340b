"""The status machine is data: named sets and one table of allowed moves."""

from __future__ import annotations

from schemas import FINAL, IN_FLIGHT, TERMINAL, TRANSITIONS, Status, can_move, sql_list


def test_every_status_is_in_flight_or_terminal_and_has_a_row_in_the_table() -> None:
    assert set(Status) == IN_FLIGHT | TERMINAL and not IN_FLIGHT & TERMINAL
    assert set(TRANSITIONS) == set(Status)


def test_final_statuses_never_move() -> None:
    assert all(not TRANSITIONS[s] for s in FINAL)
    assert Status.SENT not in FINAL and TRANSITIONS[Status.SENT]  # receipts still move it


def test_a_terminal_row_never_goes_back_to_a_provider() -> None:
    for status in TERMINAL:
        assert not TRANSITIONS[status] & IN_FLIGHT, status


def test_receipts_move_sent_forward_only() -> None:
    assert can_move(Status.SENT, Status.DELIVERED)
    assert can_move(Status.SENT, Status.UNDELIVERED)
    assert not can_move(Status.DELIVERED, Status.SENT)
    assert not can_move(Status.UNDELIVERED, Status.DELIVERED)


def test_only_a_retry_goes_back_to_pending() -> None:
    back = {(a, b) for a, moves in TRANSITIONS.items() for b in moves if b is Status.PENDING}
    assert back == {(Status.SENDING, Status.PENDING), (Status.SCHEDULED, Status.PENDING)}


def test_sql_lists_are_stable_literals() -> None:
    assert sql_list(IN_FLIGHT) == "('pending', 'scheduled', 'sending')"
