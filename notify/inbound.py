"""An inbound SMS, applied: STOP suppresses the sender's number, START lifts it, HELP and
everything else change nothing (docs/interfaces.md section 6).

The webhook receiver checks the signature, records the message, and calls `handle_inbound`;
nothing here renders or stores the body beyond reading its keyword (no inbound text ever
reaches a template). Twilio sends its own compliance replies, so the answer is empty TwiML.
"""

from __future__ import annotations

from notify import logs, opt_outs, suppressions
from notify.logs import mask
from schemas import Channel, InboundResult, InboundSms, Keyword, Reason

log = logs.get("inbound")

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def source_of(message: InboundSms) -> str:
    """A change's `source`: the inbound message that asked for it."""
    return f"inbound:{message.message_sid}"


async def handle_inbound(db: suppressions.Db, message: InboundSms) -> InboundResult:
    """Apply one inbound SMS to the suppressions of its sender (`From`), in one transaction
    (the caller's, given a connection). A number that is not E.164 is stored as given and
    flagged (`suppressions.flag` = `not_e164`)."""
    found = opt_outs.keyword(message.body, message.opt_out_type)
    number = message.from_
    # No sender (the receiver answers 400 before calling): nothing to suppress.
    acts = bool(number.strip())
    changed = False
    if acts and found is Keyword.STOP:
        changed = await suppressions.suppress(
            db, Channel.SMS, number, Reason.OPT_OUT, source_of(message)
        )
    elif acts and found is Keyword.START:
        changed = await suppressions.unsuppress(db, Channel.SMS, number, source_of(message))
    flag = opt_outs.flag_for(Channel.SMS, number)
    log.info(
        "inbound sms",
        extra=logs.fields(
            message_sid=message.message_sid,
            sender=mask(number),
            keyword=found.value,
            opt_out_type=message.opt_out_type,
            changed=changed,
            flag=flag,
        ),
    )
    return InboundResult(keyword=found, changed=changed, flag=flag)
