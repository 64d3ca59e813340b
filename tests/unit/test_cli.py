"""`notify` itself: what it loads to start, and the one line it prints for a service problem."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import asyncpg
import pytest

from cli import status as status_report
from cli.main import main


def test_importing_the_cli_loads_no_database_or_redis_client() -> None:
    # A fresh interpreter: this one has loaded both long ago.
    code = "import sys, cli.main; print(sorted({'asyncpg', 'redis'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


HEAVY = ("jinja2", "asyncpg", "phonenumbers", "redis", "celery")


@pytest.mark.parametrize(
    "argv", [["publish", "--help"], ["rules", "check", "--help"], ["--help"]], ids=" ".join
)
def test_parsing_a_command_loads_no_template_engine_or_database_driver(argv: list[str]) -> None:
    # The whole parser is built for every command, so this covers every subcommand's
    # arguments; only running a subcommand may import what it needs.
    code = (
        "import sys\nfrom cli.main import main\ntry:\n    main(sys.argv[1:])\n"
        "except SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def _raising(exc: Exception) -> Callable[..., int]:
    def run(*_: object) -> int:
        raise exc

    return run


def test_a_missing_table_says_run_migrate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = asyncpg.UndefinedTableError('relation "notifications" does not exist')
    monkeypatch.setattr(status_report, "main", _raising(missing))
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run `notify migrate`" in err
    assert 'relation "notifications" does not exist' in err


@pytest.mark.parametrize(
    ("variable", "url", "argv"),
    [
        ("DATABASE_URL", "postgresql://127.0.0.1:1/notifications", ["suppressions", "list"]),
        ("REDIS_URL", "redis://127.0.0.1:1/0", ["dlq", "list"]),
    ],
)
def test_an_unreachable_service_is_one_line_and_exit_2(
    variable: str,
    url: str,
    argv: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(variable, url)  # port 1: nothing listens, refused at once
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("notify: cannot reach a service: ") and err.count("\n") == 1


def test_any_other_error_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(status_report, "main", _raising(KeyError("a bug")))
    with pytest.raises(KeyError, match="a bug"):
        main(["status"])


def test_migrate_reports_what_it_did_and_up_to_date_only_when_nothing_was_applied() -> None:
    from cli.main import migrate_report
    from notify.database import Migrated

    names = {1: "first", 2: "second"}
    assert migrate_report(Migrated(True, [1, 2], 2), names) == [
        "created the database", "applied migrations 1 (first), 2 (second)",
        "the schema is at version 2",
    ]  # fmt: skip
    # A database a DBA created empty: nothing created, everything applied.
    assert migrate_report(Migrated(False, [2], 2, backfilled=3), names) == [
        "applied migration 2 (second)", "the schema is at version 2", "backfilled 3 rows",
    ]  # fmt: skip
    assert migrate_report(Migrated(False, [], 2), names) == [
        "the schema was already up to date (version 2); nothing applied"
    ]
