"""Which inbound SMS are opt-outs, opt-ins or help requests (docs/interfaces.md section 6). Pure.

Only a whole body counts, after trimming and case-folding: "STOP" and " stop " opt out,
"please stop at the back door" does not. Twilio's Advanced Opt-Out, when on, matches its
own (localised, configurable) keywords and says what it found in `OptOutType`; that wins
over our reading of the body, so "Arrêt" with `OptOutType=STOP` opts out.
"""

from __future__ import annotations

import re

from schemas import NOT_E164, Channel, Keyword

# Twilio's default opt-out and opt-in keywords (and the contract's).
STOP_WORDS = frozenset(
    {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "revoke"}
)
START_WORDS = frozenset({"start", "unstop", "yes"})
HELP_WORDS = frozenset({"help", "info"})

_OPT_OUT_TYPES = {"stop": Keyword.STOP, "start": Keyword.START, "help": Keyword.HELP}
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")


def keyword(body: str | None, opt_out_type: str | None = None) -> Keyword:
    """The keyword an inbound SMS carries; `Keyword.NONE` for an ordinary reply."""
    if opt_out_type:
        found = _OPT_OUT_TYPES.get(opt_out_type.strip().casefold())
        if found is not None:
            return found
    word = (body or "").strip().casefold()
    if word in STOP_WORDS:
        return Keyword.STOP
    if word in START_WORDS:
        return Keyword.START
    if word in HELP_WORDS:
        return Keyword.HELP
    return Keyword.NONE


def flag_for(channel: Channel, recipient: str) -> str | None:
    """Why a recipient stored as given will not match notifications (addressed in E.164)."""
    if channel is Channel.SMS and not _E164.match(recipient):
        return NOT_E164
    return None
