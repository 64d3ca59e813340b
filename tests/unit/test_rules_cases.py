"""`notify rules test`: each case's expectations must match what is produced, one to one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cli.main import main

ROOT = Path(__file__).resolve().parents[2]
RULES = """
rules:
  - name: delay-sms
    on: shipment.delayed
    when: data.delay >= 30
    channel: sms
    to: "{{ data.phone }}"
    body: "Shipment {{ data.id }} is {{ data.delay }} min late."
  - name: delay-push
    on: shipment.delayed
    channel: push
    to: "{{ data.tokens }}"
    title: Delayed
    body: "{{ data.id }} is late."
  - name: reminder
    on: shipment.delayed
    channel: sms
    to: "{{ data.phone }}"
    body: "Arriving soon."
    delay: 10m
"""
EVENT = (
    'event: {type: shipment.delayed, data: {id: S1, delay: 45, phone: "+14155550100", '
    "tokens: [t1, t2]}}"
)
ALL = """
      - {rule: delay-sms, channel: sms, recipient: "+14155550100", status: pending,
         body: "Shipment S1 is 45 min late."}
      - {rule: delay-push, channel: push, recipient: t1, title: Delayed}
      - {rule: delay-push, channel: push, recipient: t2, body_contains: "is late"}
      - {rule: reminder, status: scheduled}"""

Run = Callable[[str], tuple[int, str, str]]


@pytest.fixture
def run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    """run(cases YAML) -> (exit code, stdout, stderr) of `notify rules test`."""

    def go(cases: str, rules: str = RULES) -> tuple[int, str, str]:
        (tmp_path / "rules.yaml").write_text(rules)
        (tmp_path / "cases.yaml").write_text(cases)
        code = main(
            ["rules", "test", str(tmp_path / "rules.yaml"), "--cases", str(tmp_path / "cases.yaml")]
        )
        out, err = capsys.readouterr()
        return code, out, err

    return go


def one_case(expect: str, event: str = EVENT) -> str:
    return f"cases:\n  - name: the case\n    {event}\n    expect:{expect}\n"


def test_the_bundled_cases_pass_against_the_bundled_rules(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["rules", "test", "rules.yaml", "--cases", "rules.cases.yaml"]) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    assert out.rstrip().endswith("passed, 0 failed")


def test_every_notification_expected_passes(run: Run) -> None:
    code, out, _ = run(one_case(ALL))
    assert (code, out) == (0, "PASS the case\n\n1 case: 1 passed, 0 failed\n")


def test_expect_nothing(run: Run) -> None:
    code, _, _ = run(one_case(" []", event="event: {type: order.placed, data: {}}"))
    assert code == 0


def test_a_notification_produced_but_not_expected_fails(run: Run) -> None:
    code, out, _ = run(one_case(ALL.rsplit("\n", 1)[0]))  # the reminder is not expected
    assert code == 1
    assert "FAIL the case  (" in out
    assert (
        '  + produced, not expected: rule="reminder" channel="sms" recipient="+14155550100" '
        'status="scheduled" body="Arriving soon."' in out
    )
    assert "  - expected" not in out


def test_an_expected_notification_not_produced_fails_with_the_nearest(run: Run) -> None:
    code, out, _ = run(one_case(ALL.replace("45 min late", "50 min late")))
    assert code == 1
    lines = out.splitlines()
    at = lines.index(next(line for line in lines if line.startswith("  - expected")))
    assert lines[at].endswith(
        'rule="delay-sms" channel="sms" recipient="+14155550100" '
        'status="pending" body="Shipment S1 is 50 min late."'
    )
    assert lines[at + 1] == "      nearest produced: delay-sms +14155550100"
    assert (
        lines[at + 2] == "        body: expected 'Shipment S1 is 50 min late.', "
        "got 'Shipment S1 is 45 min late.'"
    )
    assert any(line.startswith('  + produced, not expected: rule="delay-sms"') for line in lines)


def test_expect_nothing_fails_when_something_is_produced(run: Run) -> None:
    code, out, _ = run(one_case(" []"))
    assert code == 1
    assert out.count("  + produced, not expected:") == 4


def test_one_expectation_cannot_match_two_notifications(run: Run) -> None:
    expect = ALL.replace('recipient: t2, body_contains: "is late"', 'body_contains: "late"')
    assert run(one_case(expect))[0] == 0
    # Two push tokens, one loose expectation: the second push is unexpected.
    loose = "\n      - {rule: delay-push}\n      - {rule: delay-sms}\n      - {rule: reminder}"
    code, out, _ = run(one_case(loose))
    assert code == 1
    assert out.count("+ produced, not expected") == 1


def test_a_loose_expectation_never_steals_what_a_strict_one_needs(run: Run) -> None:
    # Greedy matching would give t1 to the first, loose line and leave the second unmatched.
    expect = """
      - {rule: delay-push}
      - {rule: delay-push, recipient: t1}
      - {rule: delay-sms}
      - {rule: reminder}"""
    assert run(one_case(expect))[0] == 0


def test_a_unknown_rule_name_is_pointed_out(run: Run) -> None:
    code, out, _ = run(one_case(ALL + "\n      - {rule: delay-smss}"))
    assert code == 1
    assert "has no rule named 'delay-smss'" in out


def test_invalid_recipient_and_template_error_are_expectable(run: Run) -> None:
    event = "event: {type: shipment.delayed, data: {delay: 45, phone: nope, tokens: []}}"
    expect = """
      - {rule: delay-sms, status: failed, error_code: template_error}
      - {rule: reminder, recipient: nope, status: failed, error_code: invalid_recipient}"""
    code, out, _ = run(one_case(expect, event=event))
    assert (code, out.splitlines()[0]) == (0, "PASS the case")


def test_a_rule_whose_recipient_is_undefined_fails_alone_with_template_error(run: Run) -> None:
    rules = RULES.replace('to: "{{ data.tokens }}"', 'to: "{{ data.push_tokens }}"')
    code, out, _ = run(one_case(ALL), rules=rules)
    assert code == 1
    assert 'rule="delay-push" channel="push" recipient="" status="failed"' in out
    assert 'error_code="template_error"' in out


def test_a_broken_cases_file_exits_2_with_positions(run: Run, tmp_path: Path) -> None:
    cases = """cases:
  - name: one
    event: {type: shipment.delayed, data: {}}
    expect:
      - {rule: delay-sms, recipient: +14155550100, colour: red}
      - {status: sent-ish, body: a, body_contains: b}
  - name: one
    event: {type: "not a type", data: {}}
    expect: []
  - name: two
    event: {type: a.b, data: {}}
"""
    code, _, err = run(cases)
    path = tmp_path / "cases.yaml"
    assert code == 2
    assert err.splitlines() == [
        f"{path}:5:38: recipient must be text: put it in quotes",
        f"{path}:5:52: unknown key 'colour'",
        f"{path}:6:18: unknown status 'sent-ish': use one of cancelled, delivered, failed, "
        "pending, scheduled, sending, sent, skipped, undelivered",
        f"{path}:6:37: use either 'body' or 'body_contains'",
        f"{path}:8:12: the consumer would dead-letter this event: bad_type: type 'not a type' "
        "is not a dotted event type",
        f"{path}:10:5: 'expect' must be a list of notifications ([] for none)",
    ]


def test_a_cases_file_yaml_error_exits_2(run: Run, tmp_path: Path) -> None:
    code, _, err = run('cases:\n  - name: "unclosed\n')
    assert code == 2
    assert err.startswith(f"{tmp_path / 'cases.yaml'}:2:11: YAML syntax error:")


def test_a_broken_rules_file_exits_2(run: Run, tmp_path: Path) -> None:
    code, _, err = run(one_case(" []"), rules=RULES.replace("channel: push", "channel: fax"))
    assert code == 2
    assert f"{tmp_path / 'rules.yaml'}:11:14: unknown channel 'fax'" in err
