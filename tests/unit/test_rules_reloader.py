"""The hot-reload watcher: a broken file of any kind leaves the last good rules running."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from consumer import reloader
from consumer.reloader import RulesWatcher
from schemas import RulesError

GOOD = """
rules:
  - name: delay-sms
    on: shipment.delayed
    channel: sms
    to: "{{ data.phone }}"
    body: "late by {{ data.minutes | humanize_minutes }}"
"""


def errors() -> float:
    return REGISTRY.get_sample_value("notify_rules_reload_total", {"result": "error"}) or 0.0


@pytest.mark.parametrize(
    "broken",
    [
        GOOD.replace("humanize_minutes", "humanise_minutes"),  # unknown filter
        GOOD.replace('"{{ data.phone }}"', '"{{ data.phone is nonsense }}"'),  # unknown test
        GOOD.replace("late by", "{% if data.x %}{{ data.y | nope }}{% endif %}"),
        GOOD + "    delay: 99999999999d\n    cancel_on: shipment.delivered\n",
        GOOD.replace("late", "late\x07"),
    ],
)
def test_a_broken_file_is_refused_and_the_last_good_rules_stay(tmp_path: Path, broken: str) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)
    watcher = RulesWatcher(str(path), poll_seconds=0)
    good, before = watcher.current, errors()
    path.write_text(broken)
    assert watcher.poll(force=True) is False
    assert watcher.current is good
    assert errors() == before + 1


def test_a_loader_bug_keeps_the_last_good_rules_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)
    watcher = RulesWatcher(str(path), poll_seconds=0)
    good = watcher.current

    def buggy(_: str) -> None:
        raise KeyError("a bug in the loader, not in the file")

    monkeypatch.setattr(reloader, "load_file", buggy)
    assert watcher.poll(force=True) is False
    assert watcher.current is good


def test_a_consumer_cannot_start_on_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD.replace("humanize_minutes", "humanise_minutes"))
    with pytest.raises(RulesError) as refused:
        RulesWatcher(str(path))
    assert refused.value.problems == [
        f"{path}:7:11: unknown filter 'humanise_minutes'; did you mean 'humanize_minutes'?"
    ]
