"""The figures as a table on stdout, a JSON file and a PNG of the backlog draining."""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path
from typing import Any


def table(results: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str]] = []
    drain = results.get("consumer")
    if drain:
        rows.append(("consumer throughput (100k backlog)", f"{drain['events_per_s']:,.0f} ev/s",
                     ">= 10,000"))  # fmt: skip
        rows.append(("consumer max RSS (100k)", f"{drain['rss_max_mb']:.0f} MB", "<= 150"))
    memory = results.get("memory")
    if memory:
        rows.append((f"consumer throughput ({memory['events']:,} backlog)",
                     f"{memory['events_per_s']:,.0f} ev/s", ""))  # fmt: skip
        first, last = memory["rss_samples_mb"][0], memory["rss_max_mb"]
        rows.append((f"consumer RSS over {memory['events']:,} events",
                     f"{first:.0f} -> max {last:.0f} MB", "<= 150, flat"))  # fmt: skip
    naive = results.get("naive")
    if naive:
        rows.append(("naive per-event baseline", f"{naive['events_per_s']:,.0f} ev/s", ""))
        if drain:
            ratio = drain["events_per_s"] / naive["events_per_s"]
            results["ratio"] = ratio
            rows.append(("batched / naive", f"{ratio:.1f}x", ">= 10x"))
    for part in ("workers", "push"):
        worker = results.get(part)
        if worker:
            rows.append((f"worker {worker['channel']} sends ({worker['worker_processes']} proc, "
                         f"{worker['latency_ms']} ms emulator)",
                         f"{worker['sends_per_s']:,.0f} /s", ">= 1,000"))  # fmt: skip
            calls = f"{worker['call_p50_ms']:.0f} / {worker['call_p99_ms']:.0f} ms"
            rows.append((f"  {worker['channel']} provider call p50 / p99", calls, ""))
    fcm = results.get("fcm")
    if fcm:
        for mode, figures in fcm.items():
            if isinstance(figures, dict):
                rows.append((f"fcm client: {mode}", f"{figures['cpu_ms_per_push']:.2f} ms CPU, "
                             f"{figures['per_s']:,.0f}/s", ""))  # fmt: skip
    lat = results.get("latency")
    if lat:
        rows.append((f"XADD -> emulator at {lat['rate']} ev/s, p50 / p99 (all)",
                     f"{lat['p50_ms']:.0f} / {lat['p99_ms']:.0f} ms", "p99 <= 100"))  # fmt: skip
        steady = f"{lat['steady_p50_ms']:.0f} / {lat['steady_p99_ms']:.0f} ms"
        rows.append((f"  same, after the first {lat['warmup_seconds']} s", steady, ""))
    rows.extend(_hearing_back(results))
    widths = [max(len(r[i]) for r in [("measure", "result", "target"), *rows]) for i in range(3)]
    lines = [f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c}" for a, b, c in
             [("measure", "result", "target"), *rows]]  # fmt: skip
    lines.insert(1, "-" * (sum(widths) + 4))
    return "\n".join(lines)


def save(results: dict[str, Any], out: Path) -> None:
    slim = {k: {kk: vv for kk, vv in v.items() if not kk.endswith("series")}
            if isinstance(v, dict) else v
            for k, v in results.items()}  # fmt: skip
    (out / "results.json").write_text(json.dumps(slim, indent=2))
    drain = results.get("consumer")
    if drain:
        plot(drain["series"], out / "drain.png")


def plot(series: list[tuple[float, int, int]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = [t for t, _, _ in series]
    lag = [lag for _, lag, _ in series]
    rate = [0.0] + [(b[2] - a[2]) / max(1e-9, b[0] - a[0]) for a, b in pairwise(series)]
    fig, left = plt.subplots(figsize=(9, 4.5))
    left.plot(times, rate, color="tab:blue", label="throughput (events/s)")
    left.set_xlabel("seconds since start")
    left.set_ylabel("events/s", color="tab:blue")
    right = left.twinx()
    right.plot(times, lag, color="tab:red", label="lag (entries)")
    right.set_ylabel("lag (entries)", color="tab:red")
    left.set_title("100k backlog draining through one `notify consume`")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _hearing_back(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    hooks = results.get("webhooks")
    if hooks and "skipped" in hooks:
        rows.append(("webhooks", hooks["skipped"], ""))
    elif hooks:
        grouped, naive = hooks["grouped"], hooks["naive"]
        rows.append((f"signed callbacks, one notify webhooks ({grouped['connections']} conns)",
                     f"{grouped['per_s']:,.0f} /s", ">= 3,000"))  # fmt: skip
        rows.append(("  request p50 / p99",
                     f"{grouped['p50_ms']:.1f} / {grouped['p99_ms']:.1f} ms", ""))  # fmt: skip
        rows.append((f"  RSS over {grouped['callbacks']:,} callbacks",
                     f"{grouped['rss_start_mb']:.0f} -> max {grouped['rss_max_mb']:.0f} MB",
                     "flat"))  # fmt: skip
        rows.append(("naive per-request UPDATE+commit", f"{naive['per_s']:,.0f} /s",
                     f"p50 {naive['p50_ms']:.0f} / p99 {naive['p99_ms']:.0f} ms"))  # fmt: skip
        rows.append(("grouped / naive", f"{hooks['ratio']:.1f}x", ">= 5x"))
    relay = results.get("relay")
    if relay:
        rows.append((f"outbox relay draining {relay['backlog']:,}",
                     f"{relay['drain_per_s']:,.0f} /s", ""))  # fmt: skip
        rows.append((f"  relay lag, {relay['worker_processes']} workers at "
                     f"{relay['sends_per_s']:,.0f} SMS/s",
                     f"p50 {relay['lag_rows_p50']:,} rows / {relay['lag_age_p50_s']:.2f} s, "
                     f"max {relay['lag_rows_max']:,} / {relay['lag_age_max_s']:.1f} s",
                     ""))  # fmt: skip
    return rows
