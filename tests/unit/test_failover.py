"""Failover between SMS providers and the shares that follow health: pure decisions and the
delivery path over the fake store (no servers). The real SDKs: tests/integration."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import fakeredis
import pytest

from notify.provider_health import Evidence
from notify.settings import Settings
from schemas import (
    AmbiguousDeliveryError,
    AttemptOutcome,
    Channel,
    Provider,
    RefusedDeliveryError,
    Status,
    TransientDeliveryError,
)
from tasks.delivery import deliver
from tasks.health import reweigh
from tasks.providers.choice import failover_target, pick
from tasks.runtime import Runtime
from tasks.testing import FakeWorkerStore
from tasks.weights import ProviderWeights, weigh
from tests.unit.test_delivery import FakeProvider, listed, row, unsure

TWO = ("twilio", "vonage")


def runtime(
    store: FakeWorkerStore, twilio: FakeProvider, vonage: FakeProvider, **extra: Any
) -> Runtime:
    settings = Settings(
        max_send_attempts=3, retry_base_seconds=1, retry_max_seconds=10, sms_providers=TWO,
        sms_provider_weights=(("twilio", 100.0), ("vonage", 0.0)),
        **{"reconcile_wait_seconds": 0, **extra},  # the rows lost their answers 20 s ago
    )  # fmt: skip
    weights = ProviderWeights(fakeredis.FakeRedis(), settings)
    return Runtime(settings=settings, db=store, sms=twilio, push=FakeProvider(),  # type: ignore[arg-type]
                   pid=0, senders=ThreadPoolExecutor(2), vonage=vonage,  # type: ignore[arg-type]
                   weights=weights)  # fmt: skip


def test_a_draw_follows_the_shares_and_all_zero_goes_to_the_first() -> None:
    rng = random.Random(7)
    drawn = [pick({"twilio": 80, "vonage": 20}, TWO, rng) for _ in range(5000)]
    assert 0.75 < drawn.count("twilio") / 5000 < 0.85
    assert pick({"twilio": 0, "vonage": 0}, TWO, rng) == "twilio"
    assert {pick({"twilio": 0, "vonage": 5}, TWO, rng) for _ in range(50)} == {"vonage"}


def test_failover_goes_to_the_other_provider_and_nowhere_with_one() -> None:
    assert failover_target("twilio", TWO, {"twilio": 100, "vonage": 0}) == "vonage"
    assert failover_target("vonage", TWO, {"twilio": 0, "vonage": 100}) == "twilio"
    assert failover_target("twilio", ("twilio",), {"twilio": 100}) is None


def test_a_refusal_before_acceptance_moves_the_row_to_the_other_provider() -> None:
    store = FakeWorkerStore({1: row(1, provider=Provider.TWILIO)})
    twilio = FakeProvider(RefusedDeliveryError("20503", "service unavailable"))
    outcome = deliver(runtime(store, twilio, FakeProvider()), 1, Channel.SMS)
    assert outcome.status == "retried" and outcome.retry_in is not None
    [done] = store.finished
    assert done["status"] is Status.PENDING and done["move_to"] == "vonage"
    assert done["outcome"] is AttemptOutcome.TRANSIENT_ERROR


def test_a_lost_answer_never_moves_the_row() -> None:
    store = FakeWorkerStore({1: row(1, provider=Provider.TWILIO)})
    twilio = FakeProvider(AmbiguousDeliveryError("timeout", "read timed out"))
    deliver(runtime(store, twilio, FakeProvider()), 1, Channel.SMS)
    [done] = store.finished
    assert done["unsure"] and done["move_to"] is None and done["status"] is Status.PENDING


def test_a_plain_5xx_retries_at_the_same_provider() -> None:
    store = FakeWorkerStore({1: row(1, provider=Provider.TWILIO)})
    twilio = FakeProvider(TransientDeliveryError("20500", "internal error"))
    deliver(runtime(store, twilio, FakeProvider()), 1, Channel.SMS)
    assert store.finished[0]["move_to"] is None


def test_a_lookup_that_finds_nothing_frees_the_row_for_the_other_provider() -> None:
    store = FakeWorkerStore({1: unsure(1, provider=Provider.TWILIO)})
    twilio, vonage = FakeProvider("SM-never"), FakeProvider("uuid-1")
    outcome = deliver(runtime(store, twilio, vonage), 1, Channel.SMS)
    assert outcome.retry_in == 0.0 and twilio.calls == [] and vonage.calls == []
    [done] = store.finished
    assert done["outcome"] is AttemptOutcome.NOT_RECEIVED and done["move_to"] == "vonage"


def test_a_lookup_that_finds_the_message_settles_it_where_it_is() -> None:
    store = FakeWorkerStore({1: unsure(1, provider=Provider.TWILIO)})
    twilio = FakeProvider()
    twilio.at_twilio = [listed("SM1")]
    deliver(runtime(store, twilio, FakeProvider()), 1, Channel.SMS)
    [done] = store.finished
    assert done["provider_message_id"] == "SM1" and done["move_to"] is None


def test_a_lost_answer_at_a_provider_without_lookup_is_never_resent() -> None:
    store = FakeWorkerStore({1: row(1, provider=Provider.VONAGE)})
    vonage = FakeProvider(AmbiguousDeliveryError("timeout", "read timed out"), "again")
    outcome = deliver(runtime(store, FakeProvider(), vonage), 1, Channel.SMS)
    assert outcome.status == "failed" and outcome.code == "outcome_unknown"
    [done] = store.finished
    assert done["status"] is Status.FAILED and done["move_to"] is None
    assert len(vonage.calls) == 1


def test_the_first_claim_picks_a_provider_and_a_later_one_keeps_it() -> None:
    store = FakeWorkerStore({1: row(1), 2: row(2, provider=Provider.VONAGE)})
    twilio, vonage = FakeProvider("SM1"), FakeProvider("uuid-2")
    rt = runtime(store, twilio, vonage)
    deliver(rt, 1, Channel.SMS)
    deliver(rt, 2, Channel.SMS)
    assert len(twilio.calls) == 1 and len(vonage.calls) == 1


def test_an_erring_provider_sheds_points_and_recovers_them_gradually() -> None:
    base = {"twilio": 80.0, "vonage": 20.0}
    erring = {"twilio": Evidence(sends=40, errors=30), "vonage": Evidence(sends=10)}
    after = reweigh(base, base, erring, TWO)
    assert after == {"twilio": 30.0, "vonage": 70.0}
    after = reweigh(after, base, erring, TWO)
    assert after == {"twilio": 0.0, "vonage": 100.0}
    healthy = {"twilio": Evidence(sends=10), "vonage": Evidence(sends=10)}
    steps = [after := reweigh(after, base, healthy, TWO) for _ in range(8)]
    assert [round(s["twilio"]) for s in steps] == [10, 20, 30, 40, 50, 60, 70, 80]
    assert reweigh(steps[-1], base, healthy, TWO) == base


def test_slow_receipts_move_ten_points_a_run_and_all_sick_moves_nothing() -> None:
    base = {"twilio": 50.0, "vonage": 50.0}
    slow = {"twilio": Evidence(judged=20, slow=5), "vonage": Evidence(judged=20)}
    assert reweigh(base, base, slow, TWO) == {"twilio": 40.0, "vonage": 60.0}
    both = {"twilio": Evidence(judged=20, slow=5), "vonage": Evidence(judged=20, slow=9)}
    assert reweigh(base, base, both, TWO) == base


@pytest.mark.parametrize(
    ("evidence", "healthy"),
    [(Evidence(sends=100, errors=4), True), (Evidence(sends=100, errors=30), False),
     (Evidence(sends=100, errors=10), True), (Evidence(judged=9, slow=9), True),
     (Evidence(judged=20, slow=3), False)],
)  # fmt: skip
def test_health_thresholds(evidence: Evidence, healthy: bool) -> None:
    assert evidence.healthy is healthy


def test_a_run_stores_the_points_workers_then_draw_from() -> None:
    store = FakeWorkerStore()
    store.evidence = {"twilio": Evidence(sends=20, errors=20), "vonage": Evidence(sends=5)}
    rt = runtime(store, FakeProvider(), FakeProvider())
    assert weigh(rt) == {"twilio": 50.0, "vonage": 50.0}
    assert rt.weights is not None
    assert rt.weights.current() == {"twilio": 50.0, "vonage": 50.0}
