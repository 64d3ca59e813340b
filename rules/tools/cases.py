"""`notify rules test`: cases, each an event and exactly the notifications it must produce.

Expectations are matched one-to-one with what the rules produced (a maximum bipartite
matching, so a loose expectation never steals the only notification a stricter one fits).
Whatever is left on either side is a mismatch.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import yaml

from rules.document import Document, Path, parse
from rules.ruleset import RuleSet
from rules.tools.diff import route_each
from schemas import Event, EventError, NewNotification, RulesError, Status
from schemas.decoding import decode_entry

# Fixed, so a case's `{{ event.time }}` and its send times are the same on every run.
DEFAULT_TIME = datetime.fromisoformat("2024-01-01T12:00:00+00:00")
EXPECT_KEYS = (
    "rule",
    "channel",
    "recipient",
    "title",
    "body",
    "body_contains",
    "status",
    "error_code",
)
_NULLABLE = {"title", "error_code"}  # `title: null` asserts there is none
_EVENT_KEYS = {"id", "type", "data", "subject", "source", "time", "specversion"}
_CASE_KEYS = {"name", "description", "event", "expect"}
_CHOICES = {"channel": {"sms", "push"}, "status": {s.value for s in Status}}


class CasesError(RulesError):
    """A cases file that must be rejected; `problems` are `FILE:LINE:COL: message` lines."""


@dataclass(frozen=True)
class Expectation:
    values: dict[str, str | None]
    where: str

    def problems(self, n: NewNotification) -> list[str]:
        """Why `n` is not this notification; empty when it is."""
        out = []
        for key, want in self.values.items():
            if key == "body_contains":
                if want is not None and want not in n.body:
                    out.append(f"body {n.body!r} does not contain {want!r}")
                continue
            got = getattr(n, key)
            got = got.value if isinstance(got, enum.Enum) else got
            if got != want:
                out.append(f"{key}: expected {want!r}, got {got!r}")
        return out

    def describe(self) -> str:
        return " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in self.values.items())


@dataclass(frozen=True)
class Case:
    name: str
    where: str
    event: Event
    expect: tuple[Expectation, ...]


@dataclass(frozen=True)
class Missing:
    expectation: Expectation
    nearest: NewNotification | None = None
    why: tuple[str, ...] = ()


@dataclass(frozen=True)
class CaseResult:
    case: Case
    produced: tuple[NewNotification, ...]
    missing: tuple[Missing, ...] = ()
    unexpected: tuple[NewNotification, ...] = ()
    errors: tuple[tuple[str, str], ...] = ()  # (rule, error) for rules that raised

    @property
    def passed(self) -> bool:
        return not self.missing and not self.unexpected and not self.errors


# -- loading -------------------------------------------------------------------------------


@dataclass
class _Loader:
    filename: str
    doc: Document
    max_bytes: int
    problems: list[tuple[int, int, str]] = field(default_factory=list)

    def add(self, path: Path, message: str, *, key: bool = False) -> None:
        line, col = self.doc.where(path, key=key)
        self.problems.append((line, col, message))

    def at(self, path: Path) -> str:
        line, col = self.doc.where(path)
        return f"{self.filename}:{line}:{col}"

    def cases(self) -> list[Case]:
        top = self.doc.value
        if not isinstance(top, dict) or not isinstance(top.get("cases"), list):
            self.add(("cases",), "the file must be a mapping with a 'cases' list")
            return []
        for key in top:
            if key != "cases":
                self.add((key,), f"unknown top-level key {key!r}", key=True)
        out, names = [], set()
        for index, raw in enumerate(top["cases"]):
            case = self.case(("cases", index), raw, index)
            if case is None:
                continue
            if case.name in names:
                self.add(("cases", index, "name"), f"duplicate case name {case.name!r}")
            names.add(case.name)
            out.append(case)
        return out

    def case(self, path: Path, raw: Any, index: int) -> Case | None:
        if not isinstance(raw, dict):
            self.add(path, "each case must be a mapping with name, event and expect")
            return None
        for key in raw:
            if key not in _CASE_KEYS:
                self.add((*path, key), f"unknown key {key!r}", key=True)
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            self.add((*path, "name") if "name" in raw else path, "a case needs a 'name' (text)")
            name = None
        event = self.event((*path, "event"), raw.get("event"), index)
        if not isinstance(raw.get("expect"), list):
            message = "'expect' must be a list of notifications ([] for none)"
            self.add((*path, "expect") if "expect" in raw else path, message)
            return None
        expect = [self.expectation((*path, "expect", i), e) for i, e in enumerate(raw["expect"])]
        if name is None or event is None or None in expect:
            return None
        return Case(name, self.at(path), event, tuple(e for e in expect if e is not None))

    def event(self, path: Path, raw: Any, index: int) -> Event | None:
        if not isinstance(raw, dict):
            self.add(path, "a case needs an 'event' mapping with at least type and data")
            return None
        fields: dict[bytes, bytes] = {}
        ok = True
        for key, value in raw.items():
            text = self.event_field((*path, key), key, value)
            ok &= text is not None
            if text is not None:
                fields[str(key).encode()] = text.encode()
        fields.setdefault(b"id", f"case-{index + 1}".encode())
        if not ok:
            return None
        millis = int(DEFAULT_TIME.timestamp() * 1000)  # an event without `time` gets this
        try:
            return decode_entry(f"{millis}-{index}", fields, self.max_bytes)
        except EventError as exc:
            self.add(path, f"the consumer would dead-letter this event: {exc}")
            return None

    def event_field(  # noqa: PLR0911 - one return per kind of field
        self, path: Path, key: str, value: Any
    ) -> str | None:
        if key not in _EVENT_KEYS:
            self.add(path, f"unknown event field {key!r}", key=True)
            return None
        if key == "data":
            if not isinstance(value, dict):
                self.add(path, "data must be a mapping")
                return None
            try:
                return json.dumps(value, default=_json_default)
            except TypeError as exc:
                self.add(path, str(exc))
                return None
        if key == "time" and isinstance(value, datetime):
            if value.tzinfo is None:
                self.add(path, "time needs a UTC offset, e.g. 2024-01-01T12:00:00Z")
                return None
            return value.isoformat()
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        self.add(path, f"{key} must be text")
        return None

    def expectation(self, path: Path, raw: Any) -> Expectation | None:
        if not isinstance(raw, dict):
            self.add(path, "each expected notification must be a mapping, e.g. {rule: x}")
            return None
        values: dict[str, str | None] = {}
        before = len(self.problems)
        for key, value in raw.items():
            if key not in EXPECT_KEYS:
                self.add((*path, key), f"unknown key {key!r}", key=True)
            elif value is None and key in _NULLABLE:
                values[key] = None
            elif not isinstance(value, str):
                # YAML reads +14155550100 as a number and drops the '+': say so.
                self.add((*path, key), f"{key} must be text: put it in quotes")
            elif key in _CHOICES and value not in _CHOICES[key]:
                choices = ", ".join(sorted(_CHOICES[key]))
                self.add((*path, key), f"unknown {key} {value!r}: use one of {choices}")
            else:
                values[key] = value
        if "body" in raw and "body_contains" in raw:
            self.add((*path, "body_contains"), "use either 'body' or 'body_contains'", key=True)
        if len(self.problems) > before:
            return None
        return Expectation(values, self.at(path))


def _json_default(value: Any) -> str:
    if isinstance(value, date | datetime):  # YAML reads unquoted timestamps as dates
        return value.isoformat()
    raise TypeError(f"cannot put {type(value).__name__} in event data")


def load_cases(path: str, max_bytes: int = 65536) -> list[Case]:
    """Read and check a cases file, or raise CasesError listing every problem."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise CasesError([f"{path}:1:1: cannot read cases file: {exc}"]) from None
    try:
        doc = parse(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.context_mark or exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise CasesError([f"{path}:{line}:{col}: YAML syntax error: {exc.problem}"]) from None
    loader = _Loader(path, doc, max_bytes)
    loader.problems.extend(doc.problems)
    cases = loader.cases()
    if loader.problems:
        lines = sorted(set(loader.problems))
        raise CasesError([f"{path}:{line}:{col}: {msg}" for line, col, msg in lines])
    return cases


# -- running -------------------------------------------------------------------------------


def _match(expect: tuple[Expectation, ...], produced: list[NewNotification]) -> dict[int, int]:
    """Expectation index -> produced index, as many pairs as can be made (Kuhn's algorithm)."""
    fits = [[j for j, n in enumerate(produced) if not e.problems(n)] for e in expect]
    owner: dict[int, int] = {}

    def augment(i: int, seen: set[int]) -> bool:
        for j in fits[i]:
            if j not in seen:
                seen.add(j)
                if j not in owner or augment(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    for i in range(len(expect)):
        augment(i, set())
    return {i: j for j, i in owner.items()}


def run_case(
    case: Case,
    rules: RuleSet,
    *,
    default_region: str = "US",
    stale_after: timedelta = timedelta(hours=1),
) -> CaseResult:
    # Routed as at the event's own time, so a delayed rule shows as scheduled.
    routing = route_each(
        case.event,
        rules,
        now=case.event.time,
        default_region=default_region,
        stale_after=stale_after,
    )
    produced = routing.notifications
    pairs = _match(case.expect, produced)
    taken = set(pairs.values())
    left = [n for j, n in enumerate(produced) if j not in taken]
    names = {r.name for r in rules.rules}
    missing = []
    for i, expectation in enumerate(case.expect):
        if i in pairs:
            continue
        ranked = sorted(left, key=lambda n: len(expectation.problems(n)))
        nearest = ranked[0] if ranked else None
        why = tuple(expectation.problems(nearest)) if nearest else ()
        rule = expectation.values.get("rule")
        if rule is not None and rule not in names:  # most likely a typo in the case
            why += (f"{rules.source} has no rule named {rule!r}",)
        missing.append(Missing(expectation, nearest, why))
    errors = tuple(routing.errors.items())
    return CaseResult(case, tuple(produced), tuple(missing), tuple(left), errors)


def describe(n: NewNotification) -> str:
    parts = {
        "rule": n.rule,
        "channel": n.channel.value,
        "recipient": n.recipient,
        "status": n.status.value,
        "error_code": n.error_code,
        "title": n.title,
        "body": n.body,
    }
    return " ".join(
        f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in parts.items() if v is not None
    )


def report_lines(outcome: CaseResult) -> list[str]:
    """PASS, or FAIL with a diff: `-` expected and not produced, `+` produced unexpectedly."""
    case = outcome.case
    if outcome.passed:
        return [f"PASS {case.name}"]
    lines = [f"FAIL {case.name}  ({case.where})"]
    lines += [f"  ! rule {rule} raised while routing: {error}" for rule, error in outcome.errors]
    if outcome.errors:
        lines.append("    (the consumer retries such an event, then dead-letters it)")
    for miss in outcome.missing:
        lines.append(f"  - expected ({miss.expectation.where}): {miss.expectation.describe()}")
        if miss.nearest is not None:
            lines.append(
                f"      nearest produced: {miss.nearest.rule} "
                f"{miss.nearest.recipient or '(no recipient)'}"
            )
        lines += [f"        {why}" for why in miss.why]
    lines += [f"  + produced, not expected: {describe(n)}" for n in outcome.unexpected]
    if not outcome.produced:
        lines.append("    (the event produced no notifications)")
    return lines
