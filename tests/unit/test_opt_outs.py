"""Which inbound SMS opt out, opt back in or ask for help: the whole body, or Twilio's word."""

from __future__ import annotations

import pytest

from notify.opt_outs import START_WORDS, STOP_WORDS, flag_for, keyword
from schemas import NOT_E164, Channel, InboundSms, Keyword


@pytest.mark.parametrize(
    "body",
    ["STOP", " stop ", "Stop", "STOPALL", "unsubscribe", "Cancel", "END", "quit", "OptOut",
     "REVOKE", "\tstop\n"],
)  # fmt: skip
def test_the_stop_family_opts_out_whatever_the_case_and_spacing(body: str) -> None:
    assert keyword(body) is Keyword.STOP


@pytest.mark.parametrize("body", ["START", " unstop", "Yes "])
def test_start_unstop_and_yes_opt_back_in(body: str) -> None:
    assert keyword(body) is Keyword.START


@pytest.mark.parametrize(
    "body",
    ["please stop at the back door", "Please stop the van at the back", "STOP!", "stop stop",
     "S T O P", "stopped", "yes please", "", "   ", "ok thanks"],
)  # fmt: skip
def test_only_a_whole_body_counts(body: str) -> None:
    assert keyword(body) is Keyword.NONE


def test_help_is_recognised_and_is_neither_stop_nor_start() -> None:
    assert keyword("HELP") is Keyword.HELP
    assert keyword(" help ") is Keyword.HELP
    assert keyword("what", "HELP") is Keyword.HELP


def test_twilios_opt_out_type_wins_over_the_body() -> None:
    assert keyword("Arrêt", "STOP") is Keyword.STOP  # a localised keyword Twilio matched
    assert keyword("Arrêt") is Keyword.NONE
    assert keyword("whatever", "START") is Keyword.START
    assert keyword("STOP", "START") is Keyword.START
    assert keyword("stop", "stop") is Keyword.STOP  # any case


def test_an_unknown_opt_out_type_falls_back_to_the_body() -> None:
    assert keyword("STOP", "SOMETHING_NEW") is Keyword.STOP
    assert keyword("hello", "") is Keyword.NONE


def test_the_contracts_keywords_exactly() -> None:
    contract_stop = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
    assert {w.casefold() for w in contract_stop} == STOP_WORDS
    assert {"start", "unstop", "yes"} == START_WORDS


def test_numbers_that_are_not_e164_are_flagged_tokens_never() -> None:
    assert flag_for(Channel.SMS, "+14155550100") is None
    assert flag_for(Channel.SMS, "4155550100") == NOT_E164
    assert flag_for(Channel.SMS, "+1 415 555 0100") == NOT_E164
    assert flag_for(Channel.SMS, "TWILIO") == NOT_E164
    assert flag_for(Channel.PUSH, "tok-1") is None


def test_inbound_fields_are_read_as_twilio_names_them() -> None:
    form = {"MessageSid": "SM1", "From": "+14155550100", "To": "+15005550006", "Body": "STOP"}
    message = InboundSms.from_form({**form, "OptOutType": "STOP", "AccountSid": "AC1"})
    assert (message.message_sid, message.from_, message.to) == ("SM1", "+14155550100", form["To"])
    assert (message.body, message.opt_out_type) == ("STOP", "STOP")
    assert InboundSms.from_form(form).opt_out_type is None
