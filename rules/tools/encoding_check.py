"""`notify rules check` warnings: SMS templates whose literal text is not GSM-7.

One such character (a curly quote, a dash, an emoji) makes every message of the rule
UCS-2: 70 characters a segment instead of 160, so two or three times the price. Only the
template's own text is looked at (Jinja's data tokens); what `{{ ... }}` renders depends
on the event and is shown by `rules preview` and `rules diff`. A warning, not an error:
a non-Latin alphabet is a fine reason to pay for UCS-2.
"""

from __future__ import annotations

from jinja2.sandbox import SandboxedEnvironment

from notify import segments
from rules.document import parse
from rules.ruleset import RuleSet
from schemas import Channel

_LEXER = SandboxedEnvironment()


def literal_text(template: str) -> str:
    """The text a template writes as is, outside every `{{ }}`, `{% %}` and `{# #}`."""
    return "".join(value for _, kind, value in _LEXER.lex(template) if kind == "data")


def warnings(rules: RuleSet, text: str) -> list[str]:
    """`FILE:LINE:COL: warning: ...` for each SMS rule whose body's literal text is UCS-2."""
    doc = parse(text)
    raw = doc.value.get("rules") if isinstance(doc.value, dict) else None
    index = {r.get("name"): i for i, r in enumerate(raw or []) if isinstance(r, dict)}
    out: list[str] = []
    for rule in rules.rules:
        if rule.channel is not Channel.SMS or not rule.rule.body:
            continue
        culprits = segments.non_gsm(literal_text(rule.rule.body))
        if not culprits:
            continue
        line, col = doc.where(("rules", index.get(rule.name, 0), "body"))
        out.append(
            f"{rules.source}:{line}:{col}: warning: rule {rule.name!r}: the body's text is "
            f"not GSM-7 ({segments.named(culprits)}), so every SMS of it is UCS-2: 70 "
            "characters a segment instead of 160"
        )
    return out
