"""The console's JSON API and its security rules (CONTRACT section 12), against real
Postgres and Redis, through the app `notify console` serves."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from starlette.testclient import TestClient

from console.server import build
from console.users import load
from notify.logs import mask
from notify.settings import Settings
from tests.conftest import REDIS_URL, require_services
from tests.integration.console_data import (
    PASSWORD,
    RULES,
    XSS,
    Seeded,
    audit_rows,
    replied_stop,
    seed,
)
from tests.integration.console_data import write_users as write_users_file

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    require_services()
    home = tmp_path_factory.mktemp("console")
    (home / "rules.yaml").write_text(RULES)
    tag = uuid.uuid4().hex[:8]
    values = {
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "NOTIFY_STREAM": f"console-{tag}",
        "NOTIFY_RULES": str(home / "rules.yaml"),
        "NOTIFY_CONSOLE_USERS": str(write_users_file(home / "users")),
    }
    yield values
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(values["NOTIFY_STREAM"], f"{values['NOTIFY_STREAM']}.dlq")
    client.close()


@pytest.fixture(scope="module")
def settings(env: dict[str, str]) -> Settings:
    return Settings.from_env({**os.environ, **env})


@pytest.fixture(scope="module")
def data(settings: Settings) -> Seeded:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return seed(settings.database_url, client, settings.dlq_stream)
    finally:
        client.close()


@pytest.fixture(scope="module")
def client(settings: Settings, data: Seeded) -> Iterator[TestClient]:
    with TestClient(build(settings, load(settings.console_users))) as c:
        yield c


@pytest.fixture
def stopped(settings: Settings, data: Seeded) -> Seeded:
    replied_stop(settings.database_url, data)
    return data


def basic(name: str, password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{name}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def sign_in(client: TestClient, name: str) -> str:
    """Sign in through the form; returns the session's CSRF token."""
    client.cookies.clear()
    form = client.get("/login")
    csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
    answer = client.post(
        "/login",
        data={"csrf": csrf, "name": name, "password": PASSWORD, "next": "/"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    page = client.get("/")
    return page.text.split('name="csrf" value="')[1].split('"')[0]


# Reads


def test_search_by_a_national_number_finds_its_notifications(
    client: TestClient, data: Seeded
) -> None:
    answer = client.get(
        "/api/notifications", params={"recipient": data.national}, headers=basic("sam")
    )
    assert answer.status_code == 200
    found = answer.json()["notifications"]
    ids = [n["id"] for n in found]
    assert data.delivered_id in ids and data.scheduled_id in ids
    assert all(n["recipient"] == data.number for n in found)
    assert set(found[0]) >= {
        "id",
        "event_id",
        "event_type",
        "subject",
        "rule",
        "channel",
        "recipient",
        "status",
        "error_code",
        "created_at",
        "updated_at",
    }
    assert [n["created_at"] for n in found] == sorted(
        (n["created_at"] for n in found), reverse=True
    )


@pytest.mark.parametrize("param", ["subject", "event_id"])
def test_search_by_subject_and_event(client: TestClient, data: Seeded, param: str) -> None:
    value = data.subject if param == "subject" else f"evt-{data.tag}-1"
    answer = client.get(
        "/api/notifications", params={param: value, "limit": "1"}, headers=basic("vera")
    )
    assert answer.status_code == 200
    assert len(answer.json()["notifications"]) == 1


def test_search_box_finds_by_provider_message_id_and_notification_id(
    client: TestClient, data: Seeded
) -> None:
    for q in (f"SM{data.tag}0001", str(data.delivered_id)):
        found = client.get("/api/notifications", params={"q": q}, headers=basic("vera")).json()
        assert data.delivered_id in [n["id"] for n in found["notifications"]]


def test_a_viewer_sees_recipients_masked_and_nothing_is_audited(
    client: TestClient, data: Seeded, settings: Settings
) -> None:
    before = len(audit_rows(settings.database_url, "vera"))
    answer = client.get(f"/api/notifications/{data.delivered_id}", headers=basic("vera"))
    assert answer.json()["recipient"] == mask(data.number)
    assert data.number not in answer.text
    assert len(audit_rows(settings.database_url, "vera")) == before


def test_support_sees_in_full_and_each_reveal_is_audited(
    client: TestClient, data: Seeded, settings: Settings
) -> None:
    before = len(audit_rows(settings.database_url, "sam"))
    answer = client.get(f"/api/notifications/{data.delivered_id}", headers=basic("sam"))
    assert answer.json()["recipient"] == data.number
    rows = audit_rows(settings.database_url, "sam")
    assert len(rows) == before + 1
    assert rows[-1]["action"] == "reveal"
    assert rows[-1]["target"] == f"notification {data.delivered_id}"


def test_a_notification_has_its_timeline_and_explanation(client: TestClient, data: Seeded) -> None:
    n = client.get(f"/api/notifications/{data.delivered_id}", headers=basic("vera")).json()
    whats = [t["what"] for t in n["timeline"]]
    assert whats[:2] == ["event", "routed"]
    assert {"attempt 1", "receipt", "outcome"} <= set(whats)
    assert whats.count("receipt") == 2
    assert all(set(t) == {"at", "what", "detail"} for t in n["timeline"])
    assert n["explanation"].startswith("Delivered")
    assert n["sms"]["encoding"] == "GSM-7" and n["sms"]["segments"] == 1
    assert n["body"].startswith("Hi Ann")


def test_a_suppressed_notification_says_the_customer_replied_stop(
    client: TestClient, stopped: Seeded
) -> None:
    n = client.get(f"/api/notifications/{stopped.skipped_id}", headers=basic("vera")).json()
    assert n["status"] == "skipped" and n["error_code"] == "suppressed"
    assert "replied STOP" in n["explanation"] and "START" in n["explanation"]
    assert "suppressed" in [t["what"] for t in n["timeline"]]


def test_a_scheduled_notification_is_explained(client: TestClient, data: Seeded) -> None:
    n = client.get(f"/api/notifications/{data.scheduled_id}", headers=basic("vera")).json()
    assert n["status"] == "scheduled"
    assert n["explanation"].startswith("Scheduled for")
    assert "scheduled" in [t["what"] for t in n["timeline"]]


def test_why_not_names_the_rule_whose_condition_was_false(client: TestClient, data: Seeded) -> None:
    e = client.get(f"/api/events/{data.nothing_event}", headers=basic("vera")).json()
    assert (
        "Rule delay-sms listened but its condition (data.delay_minutes >= 30) was false"
        in (e["explanation"])
    )
    assert [n["rule"] for n in e["notifications"]] == ["eta-reminder"]


def test_the_recipient_page_has_inbound_and_suppression_history(
    client: TestClient, stopped: Seeded
) -> None:
    answer = client.get(f"/api/recipients/sms/{stopped.quiet_number}", headers=basic("sam"))
    r = answer.json()
    assert r["suppression"]["reason"] == "opt_out"
    assert [h["action"] for h in r["suppression_history"]] == ["added"]
    assert [m["body"] for m in r["inbound"]] == [XSS, "STOP"]
    assert stopped.skipped_id in [n["id"] for n in r["notifications"]]


def test_unknown_notification_is_404(client: TestClient) -> None:
    assert client.get("/api/notifications/999999999", headers=basic("vera")).status_code == 404


def test_a_search_needs_exactly_one_parameter(client: TestClient) -> None:
    assert client.get("/api/notifications", headers=basic("vera")).status_code == 400
    answer = client.get(
        "/api/notifications", params={"subject": "a", "event_id": "b"}, headers=basic("vera")
    )
    assert answer.status_code == 400
    bad_limit = client.get(
        "/api/notifications", params={"subject": "a", "limit": "x"}, headers=basic("vera")
    )
    assert bad_limit.status_code == 400


# Sign-in


@pytest.mark.parametrize(
    "path", ["/api/notifications?subject=x", "/api/dead-letters", "/api/suppressions"]
)
def test_the_api_without_credentials_is_401(client: TestClient, path: str) -> None:
    client.cookies.clear()
    answer = client.get(path)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Basic")
    assert client.get(path, headers=basic("vera", "wrong password")).status_code == 401


def test_a_page_without_a_session_redirects_to_login(client: TestClient) -> None:
    client.cookies.clear()
    answer = client.get("/operations", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/operations"


def test_the_session_cookie_is_httponly_and_strict(client: TestClient) -> None:
    client.cookies.clear()
    cookie = client.get("/login").headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie


def test_over_https_the_cookie_is_secure(settings: Settings) -> None:
    app = build(settings, load(settings.console_users))
    with TestClient(app, base_url="https://console.example") as c:
        assert "secure" in c.get("/login").headers["set-cookie"].lower()


def test_failed_sign_ins_for_a_name_are_slowed_down(settings: Settings) -> None:
    """After three failures the next attempt must wait, even with the right password."""
    with TestClient(build(settings, load(settings.console_users))) as c:
        for _ in range(3):
            assert c.get("/api/suppressions", headers=basic("olga", "nope")).status_code == 401
        answer = c.get("/api/suppressions", headers=basic("olga"))
        assert answer.status_code == 429
        assert int(answer.headers["retry-after"]) >= 1
        # Another name is not held back by olga's failures.
        assert c.get("/api/suppressions", headers=basic("vera")).status_code == 200


def test_a_wrong_password_on_the_form_is_401_and_signs_nobody_in(client: TestClient) -> None:
    client.cookies.clear()
    form = client.get("/login")
    csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
    answer = client.post("/login", data={"csrf": csrf, "name": "sam", "password": "bad"})
    assert answer.status_code == 401
    assert client.get("/", follow_redirects=False).status_code == 303


def test_the_login_form_without_its_csrf_token_is_403(client: TestClient) -> None:
    client.cookies.clear()
    client.get("/login")
    answer = client.post("/login", data={"name": "sam", "password": PASSWORD})
    assert answer.status_code == 403


def test_every_answer_has_a_csp_without_inline_script(client: TestClient) -> None:
    for path in ("/login", "/api/suppressions", "/static/console.js"):
        csp = client.get(path).headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp


# Changes


def test_a_viewer_or_support_may_not_change_anything(client: TestClient, data: Seeded) -> None:
    body = {"channel": "sms", "recipient": data.number, "reason": "manual"}
    for name in ("vera", "sam"):
        answer = client.post("/api/suppressions", json=body, headers=basic(name))
        assert answer.status_code == 403
        assert (
            client.post(
                f"/api/dead-letters/{data.dlq_id}/replay", json={}, headers=basic(name)
            ).status_code
            == 403
        )
        assert (
            client.post(
                f"/api/notifications/{data.scheduled_id}/cancel", json={}, headers=basic(name)
            ).status_code
            == 403
        )
    r = client.get(f"/api/recipients/sms/{data.number}", headers=basic("sam")).json()
    assert r["suppression"] is None


def test_an_api_post_must_be_json(client: TestClient, stopped: Seeded) -> None:
    answer = client.post(
        "/api/suppressions/lift",
        headers=basic("olga"),
        data={"channel": "sms", "recipient": stopped.quiet_number},
    )
    assert answer.status_code == 415
    r = client.get(f"/api/recipients/sms/{stopped.quiet_number}", headers=basic("sam")).json()
    assert r["suppression"] is not None


def test_an_operator_suppresses_and_lifts_with_audit(
    client: TestClient, data: Seeded, settings: Settings
) -> None:
    body = {"channel": "sms", "recipient": data.national, "reason": "manual"}
    answer = client.post("/api/suppressions", json=body, headers=basic("olga"))
    assert answer.status_code == 201 and answer.json() == {"added": True}
    listed = client.get("/api/suppressions", headers=basic("olga")).json()["suppressions"]
    assert {"channel": "sms", "recipient": data.number} in [
        {"channel": s["channel"], "recipient": s["recipient"]} for s in listed
    ]
    lift = client.post(
        "/api/suppressions/lift",
        json={"channel": "sms", "recipient": data.number},
        headers=basic("olga"),
    )
    assert lift.json() == {"lifted": True}
    actions = [(r["action"], r["target"]) for r in audit_rows(settings.database_url, "olga")]
    assert ("suppress", f"sms {data.number} (manual)") in actions
    assert ("lift", f"sms {data.number}") in actions
    history = client.get(f"/api/recipients/sms/{data.number}", headers=basic("olga")).json()
    assert [h["action"] for h in history["suppression_history"]] == ["added", "lifted"]
    assert history["suppression_history"][0]["source"] == "console:olga"


def test_an_unknown_reason_is_400(client: TestClient, data: Seeded) -> None:
    body = {"channel": "sms", "recipient": data.number, "reason": "bored"}
    assert client.post("/api/suppressions", json=body, headers=basic("olga")).status_code == 400


def test_cancel_a_scheduled_notification_once(client: TestClient, data: Seeded) -> None:
    path = f"/api/notifications/{data.scheduled_id}/cancel"
    answer = client.post(path, json={}, headers=basic("olga"))
    assert answer.status_code == 200 and answer.json()["status"] == "cancelled"
    assert client.post(path, json={}, headers=basic("olga")).status_code == 409
    n = client.get(f"/api/notifications/{data.scheduled_id}", headers=basic("olga")).json()
    assert n["status"] == "cancelled" and n["cancelled_by"] == "console:olga"
    assert "cancelled" in [t["what"] for t in n["timeline"]]
    assert (
        client.post(
            "/api/notifications/999999999/cancel", json={}, headers=basic("olga")
        ).status_code
        == 404
    )


def test_dead_letters_list_and_replay(client: TestClient, data: Seeded, settings: Settings) -> None:
    letters = client.get("/api/dead-letters", headers=basic("vera")).json()["dead_letters"]
    mine = next(d for d in letters if d["id"] == data.dlq_id)
    assert mine["reason"] == "invalid_data" and mine["event_id"] == f"evt-{data.tag}-bad"
    stream = redis.Redis.from_url(REDIS_URL)
    try:
        before = stream.xlen(settings.stream)
        answer = client.post(
            f"/api/dead-letters/{data.dlq_id}/replay", json={}, headers=basic("olga")
        )
        assert answer.json() == {"replayed": [data.dlq_id]}
        assert stream.xlen(settings.stream) == before + 1
    finally:
        stream.close()
    again = client.post(f"/api/dead-letters/{data.dlq_id}/replay", json={}, headers=basic("olga"))
    assert again.status_code == 404
    actions = [(r["action"], r["target"]) for r in audit_rows(settings.database_url, "olga")]
    assert ("replay", f"dead letter {data.dlq_id}") in actions


def test_an_api_post_with_a_session_needs_the_csrf_header(client: TestClient, data: Seeded) -> None:
    csrf = sign_in(client, "olga")
    path = f"/api/notifications/{data.skipped_id}/cancel"
    assert client.post(path, json={}).status_code == 403
    assert client.post(path, json={}, headers={"X-CSRF-Token": csrf}).status_code == 409


def test_a_page_post_without_csrf_is_403_and_changes_nothing(
    client: TestClient, data: Seeded
) -> None:
    sign_in(client, "olga")
    answer = client.post("/suppressions", data={"channel": "sms", "recipient": data.number})
    assert answer.status_code == 403
    r = client.get(f"/api/recipients/sms/{data.number}", headers=basic("sam")).json()
    assert r["suppression"] is None


def test_a_viewer_page_post_is_403(client: TestClient, data: Seeded) -> None:
    csrf = sign_in(client, "vera")
    answer = client.post(f"/operations/dead-letters/{data.dlq_id}/replay", data={"csrf": csrf})
    assert answer.status_code == 403


def test_pages_escape_untrusted_text(client: TestClient, data: Seeded) -> None:
    sign_in(client, "sam")
    page = client.get(f"/recipients/sms/{data.quiet_number}").text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert XSS not in page


def test_every_page_answers(client: TestClient, data: Seeded) -> None:
    sign_in(client, "olga")
    for path in (
        "/",
        f"/?q={data.national}",
        f"/notifications/{data.delivered_id}",
        f"/notifications/{data.delivered_id}/recipient",
        f"/events/{data.nothing_event}",
        f"/recipients/sms/{data.number}",
        "/operations",
        "/suppressions",
        "/rules",
    ):
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.text[:500])


def test_the_rules_pages_preview_and_diff(client: TestClient) -> None:
    csrf = sign_in(client, "vera")
    page = client.get("/rules").text
    assert "delay-sms" in page and "version" in page
    event = (
        '{"type": "shipment.delayed", "subject": "SHP-9", "data": {"shipment_id": '
        '"SHP-9", "delay_minutes": 50, "customer": {"name": "<b>Bo</b>", '
        '"phone": "+14155550100"}}}'
    )
    preview = client.post("/rules/preview", data={"csrf": csrf, "event": event}).text
    assert "Hi &lt;b&gt;Bo&lt;/b&gt;" in preview and mask("+14155550100") in preview
    new_rules = RULES.replace("is late.", "is running late.")
    diff = client.post(
        "/rules/diff",
        data={"csrf": csrf},
        files={"rules": ("new.yaml", new_rules.encode(), "text/yaml")},
    )
    assert diff.status_code == 200 and 'id="diff-report"' in diff.text


def test_logout_ends_the_session(client: TestClient) -> None:
    csrf = sign_in(client, "vera")
    assert client.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert client.get("/", follow_redirects=False).status_code == 303


def test_the_console_refuses_to_start_without_users(settings: Settings, tmp_path: Path) -> None:
    from console.server import serve

    empty = Settings.from_env({"NOTIFY_CONSOLE_USERS": str(tmp_path / "none")})
    assert serve(empty) == 2
