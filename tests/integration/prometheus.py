"""A real Prometheus for alert tests: a throwaway config and data directory, scraping our
processes every second, evaluating a test copy of deploy/prometheus/alerts.yml.

The copy is derived from the real file (durations divided, chosen thresholds lowered), never
written by hand, so the rules a test proves are the rules we ship.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.launcher import ROOT, Process, free_port, wait_until
from tests.profiles import services_required

ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
_UNITS = {"s": 1, "m": 60, "h": 3600}
_DURATION = re.compile(r"^(\d+)([smh])$")
_RANGE = re.compile(r"\[(\d+[smh])(?=[\]:])")  # a range vector or a subquery's range


def binary() -> str:
    """Debian's `prometheus` (`make alerts` installs it); skipped locally, a failure in CI."""
    path = shutil.which("prometheus")
    if path is None:
        message = "prometheus not installed (run `make alerts` once: it installs the package)"
        if services_required():
            pytest.fail(message)
        pytest.skip(message)
    return path


def shorten(duration: str, factor: int) -> str:
    """`5m` with factor 60 is `5s`: the same rule, on a clock `factor` times faster."""
    match = _DURATION.match(duration)
    assert match, f"unexpected duration {duration!r}"
    seconds = int(match[1]) * _UNITS[match[2]]
    assert seconds % factor == 0, f"{duration} does not divide by {factor}"
    return f"{seconds // factor}s"


def rules_for_test(
    dest: Path,
    *,
    factor: int = 60,
    thresholds: Mapping[str, tuple[str, str]] | None = None,
    source: Path = ALERTS,
) -> Path:
    """Write a copy of `source` with every `for:` and range divided by `factor`, and each
    `thresholds[alert] = (old, new)` replaced; a replacement that no longer matches fails."""
    thresholds = dict(thresholds or {})
    doc = yaml.safe_load(source.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = shorten(rule["for"], factor)
            expr = _RANGE.sub(lambda m: "[" + shorten(m[1], factor), rule["expr"])
            if rule.get("alert") in thresholds:
                old, new = thresholds.pop(rule["alert"])
                assert expr.count(old) == 1, f"{rule['alert']}: {old!r} not in {expr!r}"
                expr = expr.replace(old, new)
            rule["expr"] = expr
    assert not thresholds, f"no such alerts in {source}: {sorted(thresholds)}"
    dest.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


class Prometheus:
    """A prometheus server of this test's own, on a spare port; its HTTP API."""

    def __init__(self, log_dir: Path, targets: Mapping[str, int], rules: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                for job, port in targets.items()
            ],
        }
        (log_dir / "prometheus.yml").write_text(yaml.safe_dump(config))
        args = [
            binary(),
            f"--config.file={log_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={log_dir / 'prometheus-data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self.process = Process("prometheus", args, os.environ, log_dir)

    def wait_ready(self) -> None:
        def ready() -> bool:
            try:
                urllib.request.urlopen(f"{self.url}/-/ready", timeout=1).close()
            except OSError:
                return False
            return True

        wait_until(ready, timeout=20, message="prometheus to be ready")

    def _get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=5) as reply:
            body = json.load(reply)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        """An instant query: each series' labels and value."""
        data = self._get("/api/v1/query", query=promql)
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def alerts(self) -> list[dict[str, Any]]:
        """Every active alert (for failure messages)."""
        return list(self._get("/api/v1/alerts")["alerts"])

    def alert_states(self, name: str, **labels: str) -> set[str]:
        """States (`pending`, `firing`) of the active alerts `name` with these labels."""
        return {
            a["state"]
            for a in self.alerts()
            if a["labels"].get("alertname") == name
            and all(a["labels"].get(k) == v for k, v in labels.items())
        }
