"""`notify rules check` over a corpus of broken files, with the exact FILE:LINE:COL lines."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main

CORPUS = Path(__file__).parent / "rules_corpus"
ROOT = CORPUS.parents[2]
CASES = sorted(p.stem for p in CORPUS.glob("*.yaml"))


@pytest.mark.parametrize("name", CASES)
def test_each_broken_file_gives_its_exact_messages(
    name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    path = f"tests/unit/rules_corpus/{name}.yaml"
    assert main(["rules", "check", path]) == 1
    expected = (CORPUS / f"{name}.expected").read_text()
    assert capsys.readouterr().err == expected
    assert all(line.startswith(f"{path}:") for line in expected.splitlines())


def test_the_sample_rules_file_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(ROOT / "rules.yaml")]) == 0
    assert "OK (4 rules" in capsys.readouterr().out


def test_check_as_a_real_command_for_pre_commit_hooks() -> None:
    notify = Path(sys.executable).parent / "notify"
    path = "tests/unit/rules_corpus/unknown_key.yaml"
    bad = subprocess.run([str(notify), "rules", "check", path], cwd=ROOT, capture_output=True,
                         text=True, check=False)  # fmt: skip
    assert (bad.returncode, bad.stderr) == (
        1,
        "tests/unit/rules_corpus/unknown_key.yaml:7:5: unknown key 'bodyy'\n",
    )
    good = subprocess.run([str(notify), "rules", "check", "rules.yaml"], cwd=ROOT,
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert good.returncode == 0


def test_the_json_schema_describes_the_file(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["rules", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    rule = schema["$defs"]["Rule"]
    assert {"name", "on", "channel", "to"} <= set(rule["required"])
    assert set(rule["properties"]["channel"]["enum"]) == {"sms", "push"}


def test_the_committed_schema_is_current(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "schema"]) == 0
    assert (ROOT / "rules.schema.json").read_text() == capsys.readouterr().out


TYPO = "tests/unit/rules_corpus/unknown_filters.yaml"


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["rules", "check", TYPO], 1),
        (["rules", "preview", TYPO, "--type", "shipment.delayed", "--data", "{}"], 1),
        (["rules", "test", TYPO, "--cases", "rules.cases.yaml"], 2),
        (["rules", "diff", "rules.yaml", TYPO, "--events", "/dev/null"], 2),
        (["rules", "diff", TYPO, "rules.yaml", "--events", "/dev/null"], 2),
    ],
)
def test_every_rules_command_refuses_an_unknown_filter_as_documented(
    argv: list[str], code: int
) -> None:
    """A typo in a filter name is a broken file, never a traceback: `diff` must exit 2, so
    the pre-commit hook and CI recipe in docs/rules.md stop it."""
    notify = Path(sys.executable).parent / "notify"
    done = subprocess.run([str(notify), *argv], cwd=ROOT, capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert done.returncode == code, done.stderr
    assert done.stderr == (CORPUS / "unknown_filters.expected").read_text()
