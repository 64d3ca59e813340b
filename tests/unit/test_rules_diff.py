"""`notify rules diff` over event files: what appears, disappears or changes, and exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cli.main import main
from rules.ruleset import load_text
from rules.tools.diff import RuleChange, plan, word_diff
from sandbox.google.identifiers import registration_token

OLD = """
rules:
  - name: delay-sms
    on: shipment.delayed
    when: data.delay_minutes >= 30
    channel: sms
    to: "{{ data.customer.phone }}"
    body: "Hi {{ data.customer.name }}, {{ data.shipment_id }} is {{ data.delay_minutes }} min late"
  - name: delay-push
    on: shipment.delayed
    channel: push
    to: "{{ data.customer.push_tokens }}"
    title: "Shipment delayed"
    body: "Shipment {{ data.shipment_id }} is late."
  - name: eta-reminder
    on: shipment.delayed
    channel: sms
    to: "{{ data.customer.phone }}"
    body: "Reminder: {{ data.shipment_id }} arrives soon."
    delay: 10m
"""


def event(n: int, delay: int = 45, **customer: Any) -> dict[str, Any]:
    """One shipment.delayed line; keyword arguments add to (or replace) the customer."""
    who = {"name": "Ann", "phone": "+14155550100", "push_tokens": [registration_token(f"{n}")],
           **customer}  # fmt: skip
    data = {"shipment_id": f"SHP-{n}", "delay_minutes": delay, "customer": who}
    return {
        "id": f"evt-{n}",
        "type": "shipment.delayed",
        "time": "2024-05-01T10:00:00Z",
        "data": data,
    }


@pytest.fixture
def diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, Any]]:
    """diff(new_text, events, *flags) -> (exit code, JSON report or stderr text on exit 2)."""

    def run(new: str, events: list[Any] | None = None, *flags: str) -> tuple[int, Any]:
        (tmp_path / "old.yaml").write_text(OLD)
        (tmp_path / "new.yaml").write_text(new)
        lines = [e if isinstance(e, str) else json.dumps(e) for e in events or [event(1)]]
        (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
        code = main(
            [
                "rules",
                "diff",
                str(tmp_path / "old.yaml"),
                str(tmp_path / "new.yaml"),
                "--events",
                str(tmp_path / "events.jsonl"),
                "--json",
                *flags,
            ]
        )
        out, err = capsys.readouterr()
        return code, json.loads(out) if code != 2 else err

    return run


def by_rule(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["rule"]: r for r in report["by_rule"]}


def test_identical_files_exit_0_and_route_nothing(diff: Callable[..., tuple[int, Any]]) -> None:
    code, report = diff(OLD, [event(1), event(2)])
    assert code == 0
    assert report["differences"] == 0
    assert report["rules"]["unchanged"] == ["delay-sms", "delay-push", "eta-reminder"]
    assert report["events"] == {"read": 2, "routed": 0, "unmatched": 0, "dead_letters": 0}


def test_a_changed_body_is_shown_as_a_word_diff(diff: Callable[..., tuple[int, Any]]) -> None:
    new = OLD.replace("{{ data.delay_minutes }} min late", "{{ data.delay_minutes }} minutes late")
    code, report = diff(new, [event(1), event(2, delay=10)])
    assert code == 1
    rule = by_rule(report)["delay-sms"]
    assert (rule["change"], rule["changed"], rule["appeared"], rule["disappeared"]) == (
        "changed",
        1,
        0,
        0,
    )
    example = rule["examples"][0]
    assert example["changed"] == ["body"]
    assert example["body_diff"] == "Hi Ann, SHP-1 is 45 [-min-]{+minutes+} late"
    assert report["rules"]["unchanged"] == ["delay-push", "eta-reminder"]


def test_an_added_rule_makes_notifications_appear(diff: Callable[..., tuple[int, Any]]) -> None:
    new = (
        OLD
        + """
  - name: delay-email-ish
    on: shipment.*
    channel: sms
    to: "{{ data.customer.phone }}"
    body: "Also: {{ data.shipment_id }}"
"""
    )
    code, report = diff(new, [event(1), event(2)])
    assert code == 1
    rule = by_rule(report)["delay-email-ish"]
    assert (rule["change"], rule["appeared"]) == ("added", 2)
    assert rule["examples"][0]["old"] is None
    assert rule["examples"][0]["new"]["body"] == "Also: SHP-1"


def test_a_removed_rule_makes_notifications_disappear(
    diff: Callable[..., tuple[int, Any]],
) -> None:
    new = OLD.split("  - name: delay-push", maxsplit=1)[0]
    code, report = diff(new, [event(1), event(2, delay=5)])
    assert code == 1
    rules = by_rule(report)
    assert (rules["delay-push"]["change"], rules["delay-push"]["disappeared"]) == ("removed", 2)
    assert rules["eta-reminder"]["disappeared"] == 2
    assert report["rules"]["unchanged"] == ["delay-sms"]


def test_a_changed_recipient_and_send_time(diff: Callable[..., tuple[int, Any]]) -> None:
    new = OLD.replace(
        'to: "{{ data.customer.phone }}"\n    body: "Reminder',
        'to: "{{ data.customer.alt_phone }}"\n    body: "Reminder',
    ).replace("delay: 10m", "delay: 30m")
    code, report = diff(new, [event(1, alt_phone="+14155550199")], "--show-recipients")
    assert code == 1
    example = by_rule(report)["eta-reminder"]["examples"][0]
    assert example["changed"] == ["recipient", "send_at"]
    assert (example["old"]["recipient"], example["new"]["recipient"]) == (
        "+14155550100",
        "+14155550199",
    )
    assert (example["old"]["send_at"], example["new"]["send_at"]) == (
        "2024-05-01T10:10:00+00:00",
        "2024-05-01T10:30:00+00:00",
    )
    assert example["new"]["status"] == "scheduled"  # routed as at the event's own time


def test_recipients_are_masked_unless_asked(diff: Callable[..., tuple[int, Any]]) -> None:
    new = OLD.replace("min late", "minutes late")
    _, report = diff(new)
    assert by_rule(report)["delay-sms"]["examples"][0]["new"]["recipient"] == "+1415*****00"


def test_a_template_that_now_fails_is_a_change_of_status(
    diff: Callable[..., tuple[int, Any]],
) -> None:
    code, report = diff(OLD.replace("data.customer.name", "data.customer.first_name"))
    assert code == 1
    example = by_rule(report)["delay-sms"]["examples"][0]
    assert example["changed"] == ["body", "status", "error_code"]
    assert (example["new"]["status"], example["new"]["error_code"]) == ("failed", "template_error")


def test_a_broken_new_file_exits_2_with_file_line_col(
    diff: Callable[..., tuple[int, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = diff(OLD.replace("delay: 10m", "delay: 10 minutes"))
    new = tmp_path / "new.yaml"
    assert code == 2
    assert err == f"{new}:20:12: delay: '10 minutes' is not a duration like 30s, 10m, 2h, 1d\n"
    assert main(["rules", "check", str(new)]) == 1  # the very lines `rules check` prints
    assert capsys.readouterr().err == err


def test_bad_lines_are_reported_as_dead_letters(diff: Callable[..., tuple[int, Any]]) -> None:
    lines = [
        event(1),
        "not json",
        [1, 2],
        event(2) | {"data": "[1]"},
        {"type": "x.y"},
        event(3) | {"time": "yesterday"},
        "",
        event(4) | {"type": "order.placed"},
    ]
    code, report = diff(OLD, lines)
    assert code == 0
    assert report["events"] == {"read": 2, "routed": 0, "unmatched": 1, "dead_letters": 5}
    assert report["dead_letters"]["by_reason"] == {
        "bad_json": 1,
        "not_object": 2,
        "missing_field": 1,
        "bad_time": 1,
    }
    first = report["dead_letters"]["examples"][0]
    assert first["where"].endswith("events.jsonl:2")
    assert first["reason"] == "bad_json"


def test_examples_are_bounded_and_counts_are_not(diff: Callable[..., tuple[int, Any]]) -> None:
    new = OLD.replace("min late", "minutes late")
    code, report = diff(new, [event(n) for n in range(10)], "--examples", "2")
    rule = by_rule(report)["delay-sms"]
    assert (code, rule["changed"], len(rule["examples"])) == (1, 10, 2)


def test_the_text_report_groups_by_rule_with_counts_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "old.yaml").write_text(OLD)
    (tmp_path / "new.yaml").write_text(OLD.replace("min late", "minutes late"))
    (tmp_path / "e.jsonl").write_text(json.dumps(event(1)) + "\nnot json\n")
    code = main(
        [
            "rules",
            "diff",
            str(tmp_path / "old.yaml"),
            str(tmp_path / "new.yaml"),
            "--events",
            str(tmp_path / "e.jsonl"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert "rules: 1 changed, 0 added, 0 removed, 2 unchanged" in out
    assert "  delay-sms  changed         0            0        1" in out
    assert "body: Hi Ann, SHP-1 is 45 [-min-]{+minutes+} late" in out
    assert "bad_json 1" in out
    assert out.index("delay-sms  changed") < out.index("[-min-]")
    assert out.rstrip().endswith("1 notification differ, in 1 rule")


def test_an_unreadable_events_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "old.yaml").write_text(OLD)
    code = main(
        [
            "rules",
            "diff",
            str(tmp_path / "old.yaml"),
            str(tmp_path / "old.yaml"),
            "--events",
            str(tmp_path / "missing.jsonl"),
        ]
    )
    assert code == 2
    assert "cannot read" in capsys.readouterr().err


def test_only_rules_that_differ_are_routed() -> None:
    new = OLD.replace("min late", "minutes late").replace("delay: 10m", "delay: 11m")
    p = plan(load_text(OLD, "old.yaml"), load_text(new, "new.yaml"))
    assert (
        [r.name for r in p.old.rules]
        == [r.name for r in p.new.rules]
        == ["delay-sms", "eta-reminder"]
    )
    assert p.changes["delay-push"] is RuleChange.UNCHANGED


def test_a_rule_inheriting_a_changed_default_counts_as_changed() -> None:
    with_defaults = "defaults:\n  push:\n    title: Update\n" + OLD.replace(
        '    title: "Shipment delayed"\n', ""
    )
    changed = with_defaults.replace("title: Update", "title: News")
    p = plan(load_text(with_defaults), load_text(changed))
    assert p.changes["delay-push"] is RuleChange.CHANGED
    assert p.changes["delay-sms"] is RuleChange.UNCHANGED


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("same text", "same text", "same text"),
        ("is 45 min late.", "is 1 h late.", "is [-45 min-]{+1 h+} late."),
        ("a b", "a b c", "a b{+ c+}"),
        ("a b c", "a c", "a [-b-] c"),
        ("", "new", "{+new+}"),
        ("Hi  Ann", "Hi Ann", "Hi[-  -]{+ +}Ann"),
    ],
)
def test_word_diff(old: str, new: str, expected: str) -> None:
    assert word_diff(old, new) == expected


def test_a_rule_that_now_fails_its_template_is_a_change(
    diff: Callable[..., tuple[int, Any]],
) -> None:
    # A sole `{{ expr }}` in `to` naming a missing key fails that notification with
    # template_error (interfaces section 2): the diff shows the sent text becoming a failure.
    code, report = diff(
        OLD.replace(
            'to: "{{ data.customer.phone }}"\n    body: "Hi',
            'to: "{{ data.customer.mobile }}"\n    body: "Hi',
        )
    )
    assert code == 1
    rule = by_rule(report)["delay-sms"]
    assert (rule["error"], rule["changed"]) == (0, 1)
    [example] = rule["examples"]
    assert {"status", "error_code"} <= set(example["changed"])
    assert (example["old"]["status"], example["new"]["status"]) == ("pending", "failed")
    assert example["new"]["error_code"] == "template_error"
    assert "mobile" in example["new"]["error_message"]
