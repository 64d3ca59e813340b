"""The figures as a table on stdout, a JSON file and a PNG of the backlog draining."""

from __future__ import annotations

import json
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

Row = tuple[str, str, str]


def _ceiling(ceiling: dict[str, Any], _: dict[str, Any]) -> list[Row]:
    parser = "hiredis" if ceiling["hiredis"] else "NO hiredis"
    return [(f"Redis read+ack ceiling (XREADGROUP 500 + XACK, {parser})",
             f"{ceiling['events_per_s']:,.0f} ev/s", "")]  # fmt: skip


def _share(drain: dict[str, Any], results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    ceiling = results.get("ceiling")
    if ceiling:
        share = drain["events_per_s"] / ceiling["events_per_s"]
        rows.append(("  share of the read+ack ceiling", f"{share:.1%}", ""))
    insert = drain.get("insert_ceiling")
    if insert:
        per_event = insert["rows"] / insert["events"]
        rows.append((f"  Postgres insert ceiling, its rows ({per_event:.2f} per event)",
                     f"{insert['events_per_s']:,.0f} ev/s", ""))  # fmt: skip
        rows.append(("  share of the insert ceiling",
                     f"{drain['events_per_s'] / insert['events_per_s']:.0%}", ""))  # fmt: skip
    return rows


def _cpu(drain: dict[str, Any]) -> list[Row]:
    return [("  consumer CPU per event", f"{drain['cpu_us_per_event']:.1f} us", "")]


def _consumer(drain: dict[str, Any], results: dict[str, Any]) -> list[Row]:
    table = f", {results['suppressions']:,} suppressions" if results.get("suppressions") else ""
    return [(f"consumer throughput ({drain['events'] // 1000}k backlog, 1 SMS rule{table})",
             f"{drain['events_per_s']:,.0f} ev/s", ">= 25,000"),
            *_share(drain, results), *_cpu(drain),
            ("consumer max RSS (100k)", f"{drain['rss_max_mb']:.0f} MB", "<= 150")]  # fmt: skip


def _mix(drain: dict[str, Any], results: dict[str, Any]) -> list[Row]:
    return [(f"consumer throughput ({drain['events'] // 1000}k backlog, 3 rules: SMS, "
             "push, reminder)", f"{drain['events_per_s']:,.0f} ev/s", ">= 15,000"),
            *_share(drain, results), *_cpu(drain),
            ("  max RSS", f"{drain['rss_max_mb']:.0f} MB", "<= 150")]  # fmt: skip


def _memory(memory: dict[str, Any], _: dict[str, Any]) -> list[Row]:
    first, last = memory["rss_samples_mb"][0], memory["rss_max_mb"]
    return [(f"consumer throughput ({memory['events']:,} backlog)",
             f"{memory['events_per_s']:,.0f} ev/s", ""),
            (f"consumer RSS over {memory['events']:,} events",
             f"{first:.0f} -> max {last:.0f} MB", "<= 150, flat")]  # fmt: skip


def _naive(naive: dict[str, Any], results: dict[str, Any]) -> list[Row]:
    rows: list[Row] = [("naive per-event baseline", f"{naive['events_per_s']:,.0f} ev/s", "")]
    drain = results.get("consumer")
    if drain:
        ratio = drain["events_per_s"] / naive["events_per_s"]
        results["ratio"] = ratio
        rows.append(("batched / naive", f"{ratio:.1f}x", ">= 10x"))
    return rows


def _worker(worker: dict[str, Any], _: dict[str, Any]) -> list[Row]:
    calls = f"{worker['call_p50_ms']:.0f} / {worker['call_p99_ms']:.0f} ms"
    return [(f"worker {worker['channel']} sends ({worker['worker_processes']} proc, "
             f"{worker['latency_ms']} ms emulator)", f"{worker['sends_per_s']:,.0f} /s",
             ">= 1,000"),
            (f"  {worker['channel']} provider call p50 / p99", calls, "")]  # fmt: skip


def _fcm(fcm: dict[str, Any], _: dict[str, Any]) -> list[Row]:
    return [(f"fcm client: {mode}", f"{figures['cpu_ms_per_push']:.2f} ms CPU, "
             f"{figures['per_s']:,.0f}/s", "")
            for mode, figures in fcm.items() if isinstance(figures, dict)]  # fmt: skip


def _latency(lat: dict[str, Any], _: dict[str, Any]) -> list[Row]:
    steady = f"{lat['steady_p50_ms']:.0f} / {lat['steady_p99_ms']:.0f} ms"
    return [(f"XADD -> emulator at {lat['rate']} ev/s, p50 / p99 (all)",
             f"{lat['p50_ms']:.0f} / {lat['p99_ms']:.0f} ms", "p99 <= 100"),
            (f"  same, after the first {lat['warmup_seconds']} s", steady, "")]  # fmt: skip


def _rules_diff(diff: dict[str, Any], _: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    # The target is for a typical rules change (one rule); all changed is the worst case.
    for label, key, target in (("1 of 4 rules changed", "one_changed", ">= 20,000"),
                               ("all 4 rules changed", "all_changed", "")):  # fmt: skip
        figures = diff[key]
        rows.append((f"rules diff, {label} ({diff['events']:,} events, CPU)",
                     f"{figures['compare_per_s']:,.0f} ev/s", target))  # fmt: skip
        rows.append(("  with decoding", f"{figures['decode_and_compare_per_s']:,.0f} ev/s", ""))
        rows.append(("  naive: all rules, both files", f"{figures['naive_per_s']:,.0f} ev/s", ""))
    rows.append(("rules diff --since from Redis, 1 changed (wall)",
                 f"{diff['stream_one_changed_per_s']:,.0f} ev/s", ""))  # fmt: skip
    return rows


def _limiter(lim: dict[str, Any], _: dict[str, Any]) -> list[Row]:
    return [(f"limiter: segments/s over {lim['window_s']:.0f} s, "
             f"{lim['worker_processes']} proc (set {lim['rate']:g})",
             f"{lim['segments_per_s']:.2f} ({lim['deviation_pct']:+.1f}%)", "within 5%"),
            ("  limiter round trips per send (workers / Redis)",
             f"{lim['limiter_calls_per_send']:.3f} / "
             f"{lim['redis_script_calls_per_send']:.3f}", "<= 1")]  # fmt: skip


def _webhooks(hooks: dict[str, Any], _: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    if "skipped" in hooks:
        rows.append(("webhooks", hooks["skipped"], ""))
    else:
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
    return rows


def _relay(relay: dict[str, Any], _: dict[str, Any]) -> list[Row]:
    return [(f"outbox relay draining {relay['backlog']:,}",
             f"{relay['drain_per_s']:,.0f} /s", ""),
            (f"  relay lag, {relay['worker_processes']} workers at "
             f"{relay['sends_per_s']:,.0f} SMS/s",
             f"p50 {relay['lag_rows_p50']:,} rows / {relay['lag_age_p50_s']:.2f} s, "
             f"max {relay['lag_rows_max']:,} / {relay['lag_age_max_s']:.1f} s", "")]  # fmt: skip


def _failover(fo: dict[str, Any], _: dict[str, Any]) -> list[Row]:
    def seconds(value: float | None) -> str:
        return "never" if value is None else f"{value:.1f} s"

    return [(f"failover: {fo['sms']:,} SMS, Twilio down {fo['down_s']:.0f} s mid-run",
             f"twilio {fo['sent_twilio']:,} / vonage {fo['sent_vonage']:,}", ""),
            ("  duplicates / missing", f"{fo['duplicates']} / {fo['missing']}", "0 / 0"),
            ("  outage -> SMS moving / shares shifted",
             f"{seconds(fo['first_moved_s'])} / {seconds(fo['shares_shifted_s'])}", ""),
            ("  first attempt -> accepted, p50 / p99",
             f"{fo['latency_p50_ms']:.0f} / {fo['latency_p99_ms']:.0f} ms", "")]  # fmt: skip


# Each part's rows, in the order they are printed.
def _console(console: dict[str, Any], _: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for name, figures in console["pages"].items():
        rows.append((f"console {name} p99 ({console['rows']:,} rows)",
                     f"{figures['p99_ms']:.1f} ms", "<= 100"))  # fmt: skip
        rows.append(("  p50", f"{figures['p50_ms']:.1f} ms", ""))
    return rows


def _scale(scale: dict[str, Any], _: dict[str, Any]) -> list[Row]:
    events = f"{scale['events'] // 1000}k"
    rows: list[Row] = []
    for run in [*scale["runs"], scale["no_cancel"]]:
        n = run["consumers"]
        what = "mix" if run is not scale["no_cancel"] else "mix without cancel_on"
        rows += [
            (f"{n} consumer{'s' if n > 1 else ''}, {events} {what}",
             f"{run['events_per_s']:,.0f} ev/s", ""),
            ("  CPU per event, all processes", f"{run['cpu_us_per_event']:.1f} us", ""),
            ("    consumers / Postgres / Redis",
             f"{run['consumer_us_per_event']:.0f} / {run['postgres_us_per_event']:.0f} / "
             f"{run['redis_us_per_event']:.0f} us", ""),
        ]  # fmt: skip
    rows += [
        ("cancellation's cost per event (1 consumer, with - without)",
         f"{scale['cancel_us_per_event']:.1f} us", ""),
        ("  storage per cancel fact", f"{scale['bytes_per_fact']:.0f} B", ""),
    ]  # fmt: skip
    return rows


def _history(h: dict[str, Any], _: dict[str, Any]) -> list[Row]:
    fill, rows = h["fill"], h["fill"]["rows"]
    out: list[Row] = [(f"history fill: {rows['notifications']:,} notifications, "
                       f"{rows['notification_attempts']:,} attempts, "
                       f"{rows['notification_receipts']:,} receipts ({fill['size']})",
                       f"{fill['seconds']:.0f} s", "")]  # fmt: skip
    for name, label in (("one_rule", "1 SMS rule"), ("mix", "3-rule mix")):
        empty, full = h["empty"][name], h["full"][name]
        out += [(f"consumer, {label}: empty -> at size", f"{empty['events_per_s']:,} -> "
                 f"{full['events_per_s']:,} ev/s", "within 10%"),
                (f"  Postgres CPU per inserted row, {label}", f"{empty['postgres_cpu_us_per_row']}"
                 f" -> {full['postgres_cpu_us_per_row']} us", "< 23 us (mix)")]  # fmt: skip
    for name, figures in h["lookups"].items():
        out.append((f"lookup {name} p50 / p99", f"{figures['p50_ms']} / {figures['p99_ms']} ms",
                    "p99 <= 20 ms"))  # fmt: skip
    out.append(("notify status query (last hour by status)", f"{h['status']['p50_ms']} ms", ""))
    drop = h["drop_day"]
    out.append((f"drop one day ({drop['day_rows']:,} rows): time, WAL",
                f"{drop['seconds'] * 1000:.0f} ms, {drop['wal_bytes']:,} B", "<= 1 s"))  # fmt: skip
    return out


PART_ROWS: dict[str, Callable[[dict[str, Any], dict[str, Any]], list[Row]]] = {
    "ceiling": _ceiling,
    "consumer": _consumer,
    "mix": _mix,
    "memory": _memory,
    "naive": _naive,
    "workers": _worker,
    "push": _worker,
    "fcm": _fcm,
    "latency": _latency,
    "rules_diff": _rules_diff,
    "limiter": _limiter,
    "webhooks": _webhooks,
    "relay": _relay,
    "failover": _failover,
    "console": _console,
    "scale": _scale,
    "history": _history,
}


def table(results: dict[str, Any]) -> str:
    rows = [
        row
        for part, rows_of in PART_ROWS.items()
        if results.get(part)
        for row in rows_of(results[part], results)
    ]
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
