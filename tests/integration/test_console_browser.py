"""The console in a real browser: Debian's Chromium driven by Playwright, against a real
`notify console` process started by the launcher. A missing Chromium fails in CI."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis

from harness import launcher
from notify.logs import mask
from tests.conftest import REDIS_URL, require_services
from tests.integration.console_data import (
    PASSWORD,
    RULES,
    XSS,
    Seeded,
    replied_stop,
    seed,
    write_users,
)

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
# Never a downloaded browser, and nothing that phones home.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SHOTS = Path(os.environ.get("NOTIFY_SCREENSHOTS", "bench-results/screenshots"))


@pytest.fixture(scope="module")
def console_url(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Seeded]]:
    require_services()
    home = tmp_path_factory.mktemp("console-browser")
    (home / "rules.yaml").write_text(RULES)
    stream = f"console-b-{uuid.uuid4().hex[:8]}"
    port = launcher.free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,
        "NOTIFY_STREAM": stream,
        "NOTIFY_RULES": str(home / "rules.yaml"),
        "NOTIFY_CONSOLE_USERS": str(write_users(home / "users")),
        "NOTIFY_CONSOLE_HOST": "127.0.0.1",
        "NOTIFY_CONSOLE_PORT": str(port),
    }
    client = redis.Redis.from_url(REDIS_URL)
    data = seed(database_url, client, f"{stream}.dlq")
    proc = launcher.console(env, home).start()
    try:
        proc.wait_for_log("console listening")
        yield f"http://127.0.0.1:{port}", data
    finally:
        proc.stop()
        client.delete(stream, f"{stream}.dlq")
        client.close()


@pytest.fixture
def browser(console_url: tuple[str, Seeded]) -> Iterator[Any]:
    """One per test: Playwright's sync API holds an event loop in this thread while it
    runs, and the suite's per-test teardown (tests/integration/conftest.py) needs its own."""
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing (make install puts it there: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def sign_in(browser: Any, console_url: tuple[str, Seeded]) -> Iterator[Any]:
    """`sign_in(name)`: a fresh browser context signed in as that user, on the search page."""
    url, _ = console_url
    contexts: list[Any] = []

    def open_as(name: str) -> Any:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.goto(f"{url}/")
        assert "/login" in page.url
        page.fill("input[name=name]", name)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_selector("form.search")
        return page

    yield open_as
    for context in contexts:
        context.close()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_search_by_a_national_number_then_the_timeline_and_explanation(
    sign_in: Any, console_url: tuple[str, Seeded]
) -> None:
    _, data = console_url
    page = sign_in("sam")
    page.fill("#q", data.national)
    page.click("form.search button")
    page.wait_for_selector("table.rows")
    rows = page.locator("table.rows tbody tr")
    assert rows.count() >= 2
    assert data.number in page.locator("table.rows").inner_text()
    shot(page, "console-search")
    page.click(f"a[href='/notifications/{data.delivered_id}']")
    page.wait_for_selector("#timeline")
    assert page.locator("#explanation").inner_text().startswith("Delivered")
    timeline = page.locator("#timeline").inner_text()
    assert "routed" in timeline and "attempt 1" in timeline and "receipt" in timeline
    assert "GSM-7" in page.locator("p.sms").inner_text()
    shot(page, "console-timeline")


def test_an_operator_replays_a_dead_letter(sign_in: Any, console_url: tuple[str, Seeded]) -> None:
    url, data = console_url
    page = sign_in("olga")
    page.goto(f"{url}/operations")
    form = page.locator(f"form[action='/operations/dead-letters/{data.dlq_id}/replay']")
    assert XSS in page.locator("#dead-letters").inner_text()  # shown as text
    form.locator("button").click()
    page.wait_for_selector("p.flash")
    assert f"Replayed {data.dlq_id}" in page.locator("p.flash").inner_text()
    assert (
        page.locator(f"form[action='/operations/dead-letters/{data.dlq_id}/replay']").count() == 0
    )
    shot(page, "console-operations")


def test_a_viewer_sees_masked_numbers_and_no_replay_button(
    sign_in: Any, console_url: tuple[str, Seeded]
) -> None:
    url, data = console_url
    page = sign_in("vera")
    page.fill("#q", data.national)
    page.click("form.search button")
    page.wait_for_selector("table.rows")
    text = page.locator("table.rows").inner_text()
    assert mask(data.number) in text and data.number not in text
    page.goto(f"{url}/operations")
    assert page.locator("button.replay").count() == 0


def test_an_inbound_script_shows_as_text(
    sign_in: Any, console_url: tuple[str, Seeded], database_url: str
) -> None:
    url, data = console_url
    # Playwright's loop runs in this thread; the database write goes through another.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(replied_stop, database_url, data).result()
    page = sign_in("sam")
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{url}/notifications/{data.skipped_id}/recipient")
    page.wait_for_selector("#inbound")
    assert XSS in page.locator("#inbound").inner_text()
    assert page.locator("#inbound script").count() == 0
    assert dialogs == []
    shot(page, "console-recipient")
