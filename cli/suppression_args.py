"""The arguments of `notify suppressions`, apart from the commands so parsing stays light."""

from __future__ import annotations

import argparse

from schemas import Channel, Reason


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="suppressions_command", required=True)
    lst = sub.add_parser("list", help="every suppression, newest first")
    lst.add_argument("--channel", choices=[c.value for c in Channel])
    lst.add_argument("--json", action="store_true", help="a JSON array, recipients in full")
    add = sub.add_parser("add", help="suppress a recipient")
    add.add_argument("channel", choices=[c.value for c in Channel])
    add.add_argument(
        "recipient",
        help="a phone number in any format (sms; stored in E.164, numbers without a country "
        "code in NOTIFY_DEFAULT_REGION) or a push token",
    )
    add.add_argument(
        "--reason",
        choices=[r.value for r in Reason],
        default=Reason.MANUAL.value,
        help="one of the contract's reasons (default: manual)",
    )
    remove = sub.add_parser("remove", help="lift a recipient's suppression")
    remove.add_argument("channel", choices=[c.value for c in Channel])
    remove.add_argument("recipient", help="as for add: any format of the number")
