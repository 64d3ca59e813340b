"""`python -m sandbox`: run the emulators in the foreground."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from sandbox.server.emulator import Sandbox
from sandbox.server.masking import mask_phone, mask_token
from sandbox.server.records import RecordedMessage


def describe(message: RecordedMessage) -> str:
    """One log line per accepted message; recipients masked, bodies not logged."""
    if message.channel == "sms":
        to, sender = mask_phone(message.to), message.sender or "-"
        return f"sms  {message.id} to={to} from={sender} chars={len(message.body or '')}"
    return f"push {message.id} to={mask_token(message.to)} title={message.title!r}"


_stdout_lock = threading.Lock()


def _log_line(message: RecordedMessage) -> None:
    # Handler threads call this concurrently; one locked write keeps lines whole.
    with _stdout_lock:
        sys.stdout.write(describe(message) + "\n")
        sys.stdout.flush()


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--write-service-account", metavar="PATH")
    parser.add_argument("--project-id", default="demo-project")
    parser.add_argument("--twilio-account-sid", help="enforce these Twilio credentials")
    parser.add_argument("--twilio-auth-token")
    parser.add_argument(
        "--sms-rate",
        type=_rate,
        default=None,
        metavar="PER_SECOND",
        help="messages per second each sender drains; 0 holds them queued (default: no limit)",
    )
    parser.add_argument(
        "--delivery-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="time from sent to delivered (default: 0)",
    )
    parser.add_argument(
        "--webhook-auth-token",
        metavar="TOKEN",
        help="sign status callbacks and incoming messages with this auth token",
    )
    parser.add_argument(
        "--opted-out",
        action="append",
        default=[],
        metavar="NUMBER",
        help="a number that has texted STOP (Twilio answers 21610); repeatable",
    )
    args = parser.parse_args(argv)
    if bool(args.twilio_account_sid) != bool(args.twilio_auth_token):
        parser.error("--twilio-account-sid and --twilio-auth-token go together")
    return args


def _rate(text: str) -> float | None:
    if text.lower() in ("none", "unlimited"):
        return None
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    auth = (args.twilio_account_sid, args.twilio_auth_token) if args.twilio_account_sid else None
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sandbox = Sandbox(
        args.host,
        args.port,
        latency_ms=args.latency_ms,
        twilio_auth=auth,
        on_message=_log_line,
        sms_rate=args.sms_rate,
        delivery_delay_s=args.delivery_delay,
        webhook_auth_token=args.webhook_auth_token,
        opted_out=args.opted_out,
    ).start()
    try:
        if args.write_service_account:
            from sandbox.google.credentials import write_service_account

            path = write_service_account(
                args.write_service_account, sandbox.token_uri, args.project_id
            )
            print(f"service account written to {path}", file=sys.stderr, flush=True)
        print(f"sandbox listening on {sandbox.url}", flush=True)
        # Short waits keep the main thread responsive to signals.
        while not stop.wait(0.2):
            pass
    finally:
        sandbox.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
