"""`notify rules schema`: the JSON Schema of the rules file, for editors and CI."""

from __future__ import annotations

from typing import Any

import msgspec

from rules.push_limits import RESERVED_KEY_PATTERN
from schemas.rules import QUIET_HOURS, RulesFile

# Constraints msgspec.Meta would give, added by hand (see schemas/rules.py on why not Meta).
_CONSTRAINTS: dict[tuple[str, str], dict[str, Any]] = {
    ("Rule", "quiet_hours"): {"pattern": QUIET_HOURS},
    ("ChannelDefaults", "quiet_hours"): {"pattern": QUIET_HOURS},
    ("Throttle", "limit"): {"minimum": 1},
    ("Throttle", "window"): {"pattern": r"^\d+(\.\d+)?[smhd]$"},
}
# FCM's reserved data keys (rules/push_limits.py), refused by editors as by `rules check`.
_DATA_KEYS = {"propertyNames": {"not": {"pattern": RESERVED_KEY_PATTERN}}}


def json_schema() -> dict[str, Any]:
    schema: dict[str, Any] = msgspec.json.schema(RulesFile)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Notification routing rules"
    for (definition, name), extra in _CONSTRAINTS.items():
        prop = schema["$defs"][definition]["properties"][name]
        branches = prop.get("anyOf", [prop])
        for branch in branches:
            if branch.get("type") in ("string", "integer"):
                branch.update(extra)
    for definition in ("Rule", "ChannelDefaults"):
        for branch in schema["$defs"][definition]["properties"]["data"]["anyOf"]:
            if branch.get("type") == "object":
                branch.update(_DATA_KEYS)
    return schema
