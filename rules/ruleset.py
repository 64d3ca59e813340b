"""Load, validate and compile a rules file into a RuleSet, or explain every problem."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import msgspec
import yaml

from notify.globs import compile_globs
from rules import push_limits, rendering, rule_checks, template_checks
from rules.document import Document, Path, parse, position, syntax_error
from rules.quiet_hours import QuietHours
from rules.rendering import Renderer
from schemas import Channel, PushId, Rule, RulesError
from schemas.rules import (
    PUSH_ID_NAMES,
    Defaults,
    parse_duration,
)

_MSGSPEC_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(?P<name>[^`]+)`")
_GLOB = re.compile(r"[*?\[]")
_T = TypeVar("_T")


@dataclass(frozen=True)
class CompiledRule:
    """A rule with its templates compiled once for this rules version."""

    rule: Rule
    on: re.Pattern[str]
    when: Callable[[dict[str, Any]], bool] | None
    to: rendering.Renderer
    body: rendering.Renderer
    title: rendering.Renderer | None
    data: dict[str, rendering.Renderer]
    delay: timedelta | None
    at: rendering.Renderer | None
    offset: timedelta
    # Sending politely: quiet hours in the recipient's zone, and a per-key throttle.
    quiet_hours: QuietHours | None = None
    timezone: rendering.Renderer | None = None
    throttle_key: rendering.Renderer | None = None
    throttle_window: timedelta | None = None
    # Read from `rule` once here rather than for every event routed.
    name: str = field(init=False)
    channel: Channel = field(init=False)
    push_id: PushId | None = field(init=False)
    cancel_on: list[str] = field(init=False)  # shared by every row: never mutated

    def __post_init__(self) -> None:
        channel = Channel(self.rule.channel)
        push_id = PushId(self.rule.push_id or PushId.TOKEN) if channel is Channel.PUSH else None
        object.__setattr__(self, "name", self.rule.name)
        object.__setattr__(self, "channel", channel)
        object.__setattr__(self, "push_id", push_id)
        object.__setattr__(self, "cancel_on", self.rule.cancel_patterns())

    def matches(self, event_type: str) -> bool:
        return self.on.match(event_type) is not None


# Distinct event types remembered per rules version; upstream could send endless new ones.
_MATCHING_CACHE = 4096


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[CompiledRule, ...]
    version: str
    source: str
    _matching: dict[str, tuple[CompiledRule, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def matching(self, event_type: str) -> tuple[CompiledRule, ...]:
        """The enabled rules whose `on` matches `event_type`, in file order."""
        found = self._matching.get(event_type)
        if found is None:
            found = tuple(r for r in self.rules if r.rule.enabled and r.matches(event_type))
            if len(self._matching) >= _MATCHING_CACHE:
                self._matching.clear()
            self._matching[event_type] = found
        return found

    def longest_cancellable_delay(self) -> timedelta:
        """The longest `delay` of a rule with `cancel_on`: how long after an event a reminder
        it cancels can still be due (how long a cancel is kept, notify/cancellations.py)."""
        delays = [r.delay for r in self.rules if r.cancel_on and r.delay is not None]
        return max(delays, default=timedelta(0))

    def cancelling_types(self) -> re.Pattern[str] | None:
        patterns = [p for r in self.rules for p in r.rule.cancel_patterns()]
        return compile_globs(patterns) if patterns else None

    def event_types(self) -> frozenset[str]:
        """The event types named literally in `on` and `cancel_on` (globs name none)."""
        patterns = (p for r in self.rules for p in (*r.rule.patterns(), *r.rule.cancel_patterns()))
        return frozenset(p for p in patterns if not _GLOB.search(p))


def version_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def load_file(path: str) -> RuleSet:
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise RulesError([f"{path}:1:1: cannot read rules file: {exc}"]) from None
    return load_bytes(raw, path)


def load_bytes(raw: bytes, filename: str = "rules.yaml") -> RuleSet:
    """`load_text` of a file's bytes, which must be UTF-8."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start].decode("utf-8")  # valid up to the first bad byte
        line, col = position(before, len(before))
        message = f"the file is not UTF-8 text: byte {raw[exc.start]:#04x} cannot be read"
        raise RulesError([f"{filename}:{line}:{col}: {message}"]) from None
    return load_text(text, filename)


def load_text(text: str, filename: str = "rules.yaml") -> RuleSet:
    """Compile rules text, or raise RulesError listing every `FILE:LINE:COL: message`.

    RulesError is the only exception a rules file can cause (tests/unit/test_rules_fuzz.py)."""
    try:
        doc = parse(text)
        checker = _Checker(doc)
        rules = checker.check()
    except yaml.MarkedYAMLError as exc:
        line, col, what = syntax_error(exc, text)
        raise RulesError([f"{filename}:{line}:{col}: YAML syntax error: {what}"]) from None
    except yaml.reader.ReaderError as exc:
        line, col = position(text, exc.position)
        what = f"character {exc.character!r} is not allowed in a YAML file"
        raise RulesError([f"{filename}:{line}:{col}: {what}"]) from None
    except RecursionError:
        raise RulesError([f"{filename}:1:1: the file is nested too deeply to read"]) from None
    problems = sorted(set(checker.problems))
    if problems:
        raise RulesError([f"{filename}:{line}:{col}: {msg}" for line, col, msg in problems])
    return RuleSet(rules=tuple(rules), version=version_of(text), source=filename)


class _Checker:
    """Collects problems with positions while compiling; never stops at the first."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.problems: list[tuple[int, int, str]] = list(doc.problems)

    def add(self, path: Path, message: str, *, key: bool = False) -> None:
        line, col = self.doc.where(path, key=key)
        self.problems.append((line, col, message))

    def check(self) -> list[CompiledRule]:
        top = self.doc.value
        if not isinstance(top, dict):
            self.add((), "the file must be a mapping with a 'rules' list")
            return []
        for key in top:
            if key not in {"rules", "defaults", "version"}:
                self.add((key,), f"unknown top-level key {key!r}", key=True)
        defaults = self._defaults(top.get("defaults"))
        raw_rules = top.get("rules")
        if not isinstance(raw_rules, list):
            self.add(("rules",), "'rules' must be a list of rules")
            return []
        compiled: list[CompiledRule] = []
        names: dict[str, int] = {}
        for index, raw in enumerate(raw_rules):
            name = raw.get("name") if isinstance(raw, dict) else None
            if isinstance(name, str):
                if name in names:
                    self.add(("rules", index, "name"), f"duplicate rule name {name!r}")
                names.setdefault(name, index)
            rule = self._rule(index, raw, defaults)
            if rule is None:
                continue
            built = self._compile(index, rule)
            if built is not None:
                compiled.append(built)
        return compiled

    def _convert_error(
        self, base: Path, exc: msgspec.ValidationError, inherited: dict[str, Path] | None = None
    ) -> str | None:
        """Report one msgspec error at its position; return the top-level field it names."""
        text = str(exc)
        match = _MSGSPEC_PATH.search(text)
        message = text[: match.start()] if match else text
        parts: list[str | int] = []
        if match:
            for name, idx in _PATH_PART.findall(match.group("path")):
                parts.append(name if name else int(idx))
        unknown = _UNKNOWN_FIELD.match(message)
        if unknown:
            parts.append(unknown["name"])
        field = parts[0] if parts and isinstance(parts[0], str) else None
        where: Path = (*base, *parts)
        if inherited and field in inherited:
            where = (*inherited[field], *parts[1:])  # the value came from `defaults`
        if unknown:
            self.add(where, f"unknown key {unknown['name']!r}", key=True)
        else:
            label = ".".join(str(p) for p in parts) or "rule"
            self.add(where, f"{label}: {message.replace('`', '')}")
        return field

    def _defaults(self, raw: Any) -> Defaults:
        if raw is None:
            return Defaults()
        if isinstance(raw, dict):
            raw = {k: self._known_push_id(("defaults", k), v) for k, v in raw.items()}
            if isinstance(raw.get("push"), dict):
                raw["push"] = dict(raw["push"])
                self._push_data(("defaults", "push", "data"), raw["push"])
        try:
            return msgspec.convert(raw, Defaults)
        except msgspec.ValidationError as exc:
            self._convert_error(("defaults",), exc)
            return Defaults()

    def _known_push_id(self, path: Path, raw: Any) -> Any:
        """`raw` without a `push_id` that names no kind (reported here, in our words)."""
        if not isinstance(raw, dict) or "push_id" not in raw or raw["push_id"] in PUSH_ID_NAMES:
            return raw
        self.add((*path, "push_id"), f"unknown push_id {raw['push_id']!r}: use token or fid")
        return {k: v for k, v in raw.items() if k != "push_id"}  # check the rest of it

    def _rule(  # noqa: PLR0912 - each branch is one documented check
        self, index: int, raw: Any, defaults: Defaults
    ) -> Rule | None:
        """Validate one rule, reporting every problem found, not only the first."""
        path: Path = ("rules", index)
        if not isinstance(raw, dict):
            self.add(path, "each rule must be a mapping")
            return None
        known = set(Rule.__struct_fields__)
        for key in raw:
            if key not in known:
                self.add((*path, key), f"unknown key {key!r}", key=True)
        merged = {k: v for k, v in raw.items() if k in known}
        ok = True
        channel = merged.get("channel")
        if "channel" in merged and channel not in ("sms", "push"):
            self.add((*path, "channel"), f"unknown channel {channel!r}: use sms or push")
            merged["channel"], ok = "sms", False  # keep checking the rest of the rule
        inherited: dict[str, Path] = {}
        channel_defaults = getattr(defaults, str(merged.get("channel")), None)
        if channel_defaults is not None:
            for key, value in msgspec.structs.asdict(channel_defaults).items():
                if value is not None and key not in merged:
                    merged[key] = value
                    inherited[key] = ("defaults", str(merged["channel"]), key)
        if merged.get("channel") == "push" and "data" not in inherited:
            ok &= self._push_data((*path, "data"), merged)  # (inherited: checked in defaults)
        # (an inherited push_id was checked with the defaults)
        checked = self._known_push_id(path, merged)
        ok &= checked is merged
        merged = checked
        for required in ("name", "on", "channel", "to"):
            if required not in merged:
                self.add(path, f"rule is missing required key {required!r}")
                ok = False
        if not ok and any(r not in merged for r in ("name", "on", "to")):
            return None
        for _ in range(len(merged) + 1):
            try:
                rule = msgspec.convert(merged, Rule)
                break
            except msgspec.ValidationError as exc:
                ok = False
                field = self._convert_error(path, exc, inherited)
                if field is None or field in ("name", "on", "channel", "to"):
                    return None
                merged.pop(field, None)  # drop it and look for further problems
        else:
            return None
        ok &= self._semantics(path, rule, inherited)
        return rule if ok else None

    def _semantics(self, path: Path, rule: Rule, inherited: dict[str, Path] | None = None) -> bool:
        before = len(self.problems)
        places = inherited or {}
        rule_checks.check(rule, path, lambda key: places.get(key, (*path, key)), self.add)
        return len(self.problems) == before

    def _push_data(self, where: Path, holder: dict[str, Any]) -> bool:
        """Check `holder['data']` (keys and values FCM takes); drop it if it has problems."""
        data = holder.get("data")
        if not isinstance(data, dict):
            return True
        problems = push_limits.data_problems(data)
        for key, message, on_key in problems:
            self.add((*where, str(key)), message, key=on_key)
        if problems:
            del holder["data"]  # reported here, in FCM's terms; not again by msgspec
        return not problems

    def _built(
        self, path: Path, source: str, build: Callable[[str], _T], *, expression: bool = False
    ) -> _T | None:
        """`build(source)`, or None with each of the template's problems reported at `path`."""
        checked = template_checks.compiled(build, source, expression=expression)
        for problem in checked.problems:
            self.add(path, problem)
        return checked.value

    def _compile(self, index: int, rule: Rule) -> CompiledRule | None:
        """Compile every template of the rule, reporting each one that cannot be."""
        path: Path = ("rules", index)
        before = len(self.problems)

        def template(key: str | tuple[str, str | int], source: str | None) -> Renderer | None:
            where = (*path, *key) if isinstance(key, tuple) else (*path, key)
            return self._built(where, source, rendering.compile_template) if source else None

        when = None
        if rule.when is not None:
            when = self._built((*path, "when"), rule.when, rendering.compile_condition,
                               expression=True)  # fmt: skip
        if isinstance(rule.to, str):
            to = [template("to", rule.to)]
        else:
            to = [template(("to", i), source) for i, source in enumerate(rule.to)]
        body = template("body", rule.body)
        title, at = template("title", rule.title), template("at", rule.at)
        data = {key: template(("data", key), value) for key, value in (rule.data or {}).items()}
        zone = template("timezone", rule.timezone)
        throttle_key = template(("throttle", "key"), rule.throttle.key) if rule.throttle else None
        renderers = [r for r in to if r is not None]
        if len(self.problems) > before or body is None or len(renderers) != len(to):
            return None
        return CompiledRule(
            rule=rule,
            on=compile_globs(rule.patterns()),
            when=when,
            to=renderers[0] if isinstance(rule.to, str) else _list_renderer(renderers),
            body=body,
            title=title,
            data={key: r for key, r in data.items() if r is not None},
            delay=parse_duration(rule.delay) if rule.delay else None,
            at=at,
            offset=parse_duration(rule.offset) if rule.offset else timedelta(0),
            quiet_hours=QuietHours.parse(rule.quiet_hours) if rule.quiet_hours else None,
            timezone=zone,
            throttle_key=throttle_key,
            throttle_window=parse_duration(rule.throttle.window) if rule.throttle else None,
        )


def _list_renderer(parts: list[rendering.Renderer]) -> rendering.Renderer:
    def render(ctx: dict[str, Any]) -> list[Any]:
        out: list[Any] = []
        for part in parts:
            value = part(ctx)
            out.extend(value if isinstance(value, list | tuple) else [value])
        return out

    return render
