"""STOP and START through the real `notify webhooks`, signed as Twilio signs them, down to the
next SMS and the outcomes stream (docs/interfaces.md sections 6 and 7)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import redis

from sandbox import Sandbox
from tests.integration import processes
from tests.integration.helpers import RULES, fetch, notify, publish, rows, shipment
from tests.integration.twilio_callbacks import TwilioCallbacks, new_sid

pytestmark = pytest.mark.integration

StartWebhooks = Callable[..., TwilioCallbacks]
NUMBER = "+14155550177"


def suppressed(database_url: str, number: str) -> dict[str, Any] | None:
    found = fetch(
        database_url,
        "SELECT * FROM suppressions WHERE channel = 'sms' AND recipient = $1",
        number,
    )
    return found[0] if found else None


def events_of(database_url: str, number: str) -> list[tuple[str, str]]:
    found = fetch(
        database_url,
        "SELECT action, source FROM suppression_events WHERE recipient = $1 ORDER BY id",
        number,
    )
    return [(r["action"], r["source"]) for r in found]


def stream_entries(client: redis.Redis, stream: str) -> list[dict[str, Any]]:
    entries = []
    for _, raw in client.xrange(stream):  # type: ignore[union-attr]
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        fields["data"] = json.loads(fields["data"])
        entries.append(fields)
    return entries


@pytest.mark.parametrize(
    ("stop", "start"),
    [
        ({"Body": " Stop "}, {"Body": "START"}),  # keywords alone (no Advanced Opt-Out)
        ({"Body": "Arrêt", "OptOutType": "STOP"}, {"Body": "oui", "OptOutType": "START"}),
        ({"Body": "unsubscribe"}, {"Body": " unstop"}),
    ],
)
def test_stop_suppresses_and_start_lifts_it(
    start_webhooks: StartWebhooks,
    database_url: str,
    stop: dict[str, str],
    start: dict[str, str],
) -> None:
    twilio = start_webhooks()
    number = f"+1415556{sum(map(ord, stop['Body'])) % 10_000:04d}"
    stop_sid, start_sid = new_sid(), new_sid()
    answer = twilio.inbound(stop_sid, number, stop.pop("Body"), **stop)
    assert (answer.status_code, answer.text) == (
        200,
        '<?xml version="1.0" encoding="UTF-8"?><Response/>',
    )
    row = suppressed(database_url, number)
    assert row is not None and (row["reason"], row["source"]) == ("opt_out", f"inbound:{stop_sid}")
    assert twilio.inbound(start_sid, number, start.pop("Body"), **start).status_code == 200
    assert suppressed(database_url, number) is None
    assert events_of(database_url, number) == [
        ("added", f"inbound:{stop_sid}"),
        ("lifted", f"inbound:{start_sid}"),
    ]


def test_help_and_sentences_change_nothing_and_forgeries_are_refused(
    start_webhooks: StartWebhooks, database_url: str
) -> None:
    twilio = start_webhooks()
    number = "+14155550178"
    for body, extra in (("HELP", {"OptOutType": "HELP"}), ("please stop at the back door", {})):
        assert twilio.inbound(new_sid(), number, body, **extra).status_code == 200
    forged = twilio.post(
        "/webhooks/twilio/inbound",
        {"MessageSid": new_sid(), "From": number, "To": "+15005550006", "Body": "STOP"},
        signature="bm90IGEgc2lnbmF0dXJl",
    )
    assert forged.status_code == 403
    assert suppressed(database_url, number) is None and events_of(database_url, number) == []
    recorded = fetch(
        database_url, "SELECT body FROM inbound_messages WHERE from_number = $1", number
    )
    assert sorted(r["body"] for r in recorded) == ["HELP", "please stop at the back door"]


def test_a_stop_stops_the_next_sms_and_upstream_hears_of_both(
    start_pipeline: processes.StartPipeline,
    start_webhooks: StartWebhooks,
    redis_client: redis.Redis,
    sandbox: Sandbox,
    database_url: str,
) -> None:
    env = start_pipeline(RULES.split("  - name: delay-push")[0]).env
    twilio = start_webhooks()
    data = shipment(177)  # the customer's phone is NUMBER
    assert data["customer"]["phone"] == NUMBER
    stop_sid = new_sid()
    assert twilio.inbound(stop_sid, NUMBER, "STOP").status_code == 200
    event_id = f"opt-{env['NOTIFY_STREAM']}"
    publish(redis_client, env["NOTIFY_STREAM"], event_id, "shipment.delayed", data, "SHP-177")
    processes.wait_until(
        lambda: [r["status"] for r in rows(database_url, "event_id = $1", event_id)] == ["skipped"],
        message="the SMS stored skipped",
    )
    [row] = rows(database_url, "event_id = $1", event_id)
    assert row["error_code"] == "suppressed"
    assert NUMBER not in {m.to for m in sandbox.messages("sms")}
    stream = env["NOTIFY_OUTCOMES_STREAM"]

    def heard() -> list[dict[str, Any]]:
        entries = stream_entries(redis_client, stream)
        return [
            e
            for e in entries
            if e["data"].get("recipient") == NUMBER
            and e["type"] in ("recipient.suppressed", "notification.skipped")
        ]

    processes.wait_until(lambda: len(heard()) == 2, message="both outcomes on the stream")
    by_type = {e["type"]: e for e in heard()}
    assert by_type["recipient.suppressed"]["data"] == {
        "channel": "sms",
        "recipient": NUMBER,
        "reason": "opt_out",
    }
    skipped = by_type["notification.skipped"]["data"]
    assert (skipped["event_id"], skipped["status"], skipped["error_code"]) == (
        event_id,
        "skipped",
        "suppressed",
    )
    assert by_type["recipient.suppressed"]["source"] == "notify"


def test_rules_preview_shows_what_a_suppression_would_do(
    start_webhooks: StartWebhooks, database_url: str, tmp_path: Any
) -> None:
    twilio = start_webhooks()
    number = "+14155550179"
    assert twilio.inbound(new_sid(), number, "STOP").status_code == 200
    data = {"shipment_id": "S9", "delay_minutes": 45,
            "customer": {"name": "Ann", "phone": number, "push_tokens": []}}  # fmt: skip
    args = ["rules", "preview", str(processes.ROOT / "rules.yaml"), "--type", "shipment.delayed"]
    env = {"DATABASE_URL": database_url, "PATH": ""}
    shown = notify(env, *args, "--data", json.dumps(data), "--json", "--suppressions")
    items = {i["rule"]: i for i in json.loads(shown.stdout)["notifications"]}
    assert items["delay-sms"]["suppressed"]["reason"] == "opt_out"
    assert "would be stored skipped" in items["delay-sms"]["suppressed"]["note"]
