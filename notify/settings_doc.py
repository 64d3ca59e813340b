"""`docs/configuration.md`, generated from the settings' declarations (`make docs`)."""

from __future__ import annotations

import sys
from itertools import groupby
from pathlib import Path
from typing import Any

from notify.settings import specs

PATH = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"

_HEAD = """# Configuration

Generated from `notify/settings.py` by `make docs`; edit the declarations, not this file.

Everything comes from the environment (or files it names), read once per process into a
frozen `Settings` and passed down: by `notify` for its subcommands, and for workers and beat
by the Celery app the first time Celery reads its configuration (`app.settings`). Nothing
connects, reads a file or binds a port at import. An empty variable counts as unset.
"""


def _default(value: Any, shown: str | None) -> str:
    if shown is not None:
        return shown
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{value}`"


def markdown() -> str:
    lines = [_HEAD]
    for title, group in groupby(specs(), key=lambda item: item[1].section):
        lines += [f"## {title}", "", "| variable | default | meaning |", "|---|---|---|"]
        for _, spec, default in group:
            names = " or ".join(f"`{name}`" for name in spec.env)
            lines.append(f"| {names} | {_default(default, spec.shown)} | {spec.doc} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    PATH.write_text(markdown())
    sys.stdout.write(f"wrote {PATH}\n")
