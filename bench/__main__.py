"""`python -m bench [--only NAME ...] [--events N] [--memory-events N]`: print the figures."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from bench import runs
from bench.ceiling import read_ack
from bench.console import console_pages
from bench.env import ROOT, BenchEnv
from bench.failover import DOWN_SECONDS, FAILOVER_SMS, failover
from bench.fcm import fcm_calls
from bench.history import history
from bench.limiter import limiter
from bench.report import save, table
from bench.rules_diff import rules_diff
from bench.scale import scale
from bench.webhooks import callbacks, relay
from schemas import Channel

PARTS = (
    "consumer",
    "mix",
    "memory",
    "naive",
    "workers",
    "push",
    "fcm",
    "latency",
    "rules_diff",
    "limiter",
    "webhooks",
    "relay",
    "failover",
    "console",
    "scale",
    "history",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("--only", nargs="*", choices=PARTS, default=list(PARTS))
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--memory-events", type=int, default=1_000_000)
    parser.add_argument("--naive-events", type=int, default=5_000)
    parser.add_argument("--sends", type=int, default=20_000)
    parser.add_argument("--fcm-pushes", type=int, default=3_000)
    parser.add_argument("--worker-processes", type=int, default=3)
    parser.add_argument("--latency-workers", type=int, default=2)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--diff-events", type=int, default=100_000)
    parser.add_argument("--segments-per-second", type=float, default=100.0,
                        help="the limiter part's configured rate")  # fmt: skip
    parser.add_argument("--webhook-seconds", type=int, default=60)
    parser.add_argument("--naive-webhook-seconds", type=int, default=20)
    parser.add_argument("--webhook-connections", type=int, default=64)
    parser.add_argument("--relay-backlog", type=int, default=200_000)
    parser.add_argument("--scale-events", type=int, default=30_000,
                        help="the backlog each of the scale part's drains")  # fmt: skip
    parser.add_argument("--suppressions", type=int, default=0,
                        help="suppressed numbers (none a bench recipient)")  # fmt: skip
    parser.add_argument("--console-rows", type=int, default=1_000_000,
                        help="notifications in the table the console's pages read")  # fmt: skip
    parser.add_argument("--history-rows", type=int, default=10_000_000,
                        help="notifications the history part fills (ten days)")  # fmt: skip
    parser.add_argument("--history-events", type=int, default=30_000,
                        help="events of each drain in the history part")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    parser.add_argument("--keep", action="store_true", help="keep the database for inspection")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env = BenchEnv(out=args.out)
    results: dict[str, Any] = {}
    started = time.monotonic()
    # rules_diff needs only Redis: no database, emulator or processes to set up for it alone.
    needs_env = set(args.only) != {"rules_diff"}
    args.out.mkdir(exist_ok=True)
    try:
        if needs_env:
            env.setup()
            env.seed_suppressions(args.suppressions)
            results["suppressions"] = args.suppressions
        steps = {
            "consumer": lambda: runs.consumer_drain(env, args.events, "drain"),
            "mix": lambda: runs.consumer_drain(env, args.events, "mix", mixed=True),
            "memory": lambda: runs.consumer_drain(env, args.memory_events, "memory"),
            "naive": lambda: runs.naive(env, args.naive_events),
            "workers": lambda: runs.workers(env, args.sends, 50, args.worker_processes),
            "push": lambda: runs.workers(env, args.sends, 50, args.worker_processes, Channel.PUSH),
            "fcm": lambda: fcm_calls(env, args.fcm_pushes, 50),
            "latency": lambda: runs.latency(env, args.rate, args.seconds, args.latency_workers),
            "rules_diff": lambda: rules_diff(env, args.diff_events),
            "limiter": lambda: limiter(env, args.segments_per_second, args.worker_processes),
            "webhooks": lambda: callbacks(
                env, args.webhook_seconds, args.naive_webhook_seconds, args.webhook_connections
            ),
            "relay": lambda: relay(env, args.relay_backlog, args.sends, args.worker_processes),
            "failover": lambda: failover(env, FAILOVER_SMS, DOWN_SECONDS, args.worker_processes),
            "console": lambda: console_pages(env, args.console_rows),
            "scale": lambda: scale(env, args.scale_events),
            "history": lambda: history(env, args.history_rows, args.history_events),
        }
        if {"consumer", "mix", "memory"} & set(args.only):
            # The consumer's figures mean most next to what Redis allows in the same run.
            print("bench: Redis read+ack ceiling...", file=sys.stderr, flush=True)
            results["ceiling"] = read_ack(env, args.events)
        for name in PARTS:
            if name in args.only:
                print(f"bench: {name}...", file=sys.stderr, flush=True)
                results[name] = steps[name]()
    finally:
        if needs_env:
            env.teardown(drop=not args.keep)
        if args.keep and needs_env:
            print(f"bench: kept {env.database_url}", file=sys.stderr)
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    print(table(results))
    print(f"\n(total {results['wall_seconds']} s; figures in {args.out}/results.json, "
          f"plot in {args.out}/drain.png)")  # fmt: skip
    save(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
