"""What FCM v1 checks in a message before it looks at the device, with its answers.

From the v1 reference (projects.messages, ErrorCode INVALID_ARGUMENT): "message too big"
(4096 bytes of payload for a message to a device, keys and values counted), "invalid data
key" (`from`, `gcm`, anything prefixed `google`), "invalid TTL" (a Duration of 0 to
2,419,200 s, four weeks), and proto JSON's own rules: a field of the wrong type is
"Invalid value at 'FIELD' (TYPE_STRING), VALUE" and a field the message type does not have
is 'Invalid JSON payload received. Unknown name "X" at 'PATH': Cannot find field.'
Those last come with a google.rpc.BadRequest detail naming the field, not an FcmError.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

MAX_PAYLOAD_BYTES = 4096
MAX_TTL_S = 2_419_200
_DURATION = re.compile(r"^(\d+)(\.\d{1,9})?s$")

# The fields of each message type this emulator knows (the v1 reference's).
_FIELDS: dict[str, frozenset[str]] = {
    "message": frozenset(
        {"name", "data", "notification", "android", "webpush", "apns", "fcm_options",
         "token", "fid", "topic", "condition"}
    ),
    "message.notification": frozenset({"title", "body", "image"}),
    "message.android": frozenset(
        {"collapse_key", "priority", "ttl", "restricted_package_name", "data",
         "notification", "fcm_options", "direct_boot_ok", "bandwidth_constrained_ok",
         "restricted_satellite_ok"}
    ),
    "message.android.notification": frozenset(
        {"title", "body", "icon", "color", "sound", "tag", "click_action", "body_loc_key",
         "body_loc_args", "title_loc_key", "title_loc_args", "channel_id", "ticker",
         "sticky", "event_time", "local_only", "notification_priority", "default_sound",
         "default_vibrate_timings", "default_light_settings", "vibrate_timings",
         "visibility", "notification_count", "light_settings", "image",
         "bypass_proxy_notification", "proxy"}
    ),
    "message.apns": frozenset({"headers", "payload", "fcm_options", "live_activity_token"}),
    "message.webpush": frozenset({"headers", "data", "notification", "fcm_options"}),
}  # fmt: skip
# String fields, checked for their type (proto JSON refuses a number for a string).
_STRINGS: dict[str, tuple[str, ...]] = {
    "message.notification": ("title", "body", "image"),
    "message.android": ("collapse_key", "restricted_package_name"),
    "message.android.notification": ("title", "body", "tag", "channel_id", "sound"),
}
_MAPS = ("message.data", "message.android.data", "message.apns.headers", "message.webpush.data")


@dataclass(frozen=True)
class Invalid:
    """FCM's 400 INVALID_ARGUMENT: its message, and the field a BadRequest detail names."""

    message: str
    field: str | None = None
    # Proto JSON's own refusals come without FCM's FcmError detail.
    fcm_detail: bool = True


def check(message: dict[str, Any]) -> Invalid | None:
    """The first thing FCM would refuse in `message`, or None."""
    return (
        _unknown_fields(message)
        or _types(message)
        or _data_keys(message.get("data"))
        or _ttl(message.get("android"))
        or _size(message)
    )


def _unknown_fields(message: dict[str, Any]) -> Invalid | None:
    for path, known in _FIELDS.items():
        value = _at(message, path)
        if not isinstance(value, dict):
            continue
        for key in value:
            if key not in known:
                where = path if "." in path else "message"
                return Invalid(
                    f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': "
                    "Cannot find field.",
                    path,
                    fcm_detail=False,
                )
    return None


def _types(message: dict[str, Any]) -> Invalid | None:
    for path in (*_FIELDS, *_MAPS):
        value = _at(message, path)
        if value is not None and not isinstance(value, dict):
            return _wrong(path, value, "TYPE_MESSAGE")
    for path in _MAPS:
        for index, value in enumerate((_at(message, path) or {}).values()):
            if not isinstance(value, str):
                return _wrong(f"{path}[{index}].value", value, "TYPE_STRING")
    for path, names in _STRINGS.items():
        container = _at(message, path) or {}
        for name in names:
            value = container.get(name)
            if value is not None and not isinstance(value, str):
                return _wrong(f"{path}.{name}", value, "TYPE_STRING")
    return None


def _data_keys(data: Any) -> Invalid | None:
    for key in data or {}:
        lowered = key.lower()
        if lowered in ("from", "gcm") or lowered.startswith(("gcm.", "google")):
            return Invalid(f"Invalid data payload key: {key}", "message.data")
    return None


def _ttl(android: Any) -> Invalid | None:
    ttl = (android or {}).get("ttl")
    if ttl is None:
        return None
    match = _DURATION.match(ttl) if isinstance(ttl, str) else None
    if match is None or int(match.group(1)) > MAX_TTL_S:
        shown = json.dumps(ttl)
        return Invalid(
            f"Invalid value at 'message.android.ttl' (type.googleapis.com/"
            f"google.protobuf.Duration), {shown}",
            "message.android.ttl",
        )
    return None


def _size(message: dict[str, Any]) -> Invalid | None:
    """The payload a device would get: data keys and values, the notification's texts."""
    data = message.get("data") or {}
    notification = message.get("notification") or {}
    size = sum(len(k.encode()) + len(v.encode()) for k, v in data.items())
    size += sum(len(str(notification.get(k) or "").encode()) for k in ("title", "body"))
    if size > MAX_PAYLOAD_BYTES:
        return Invalid(f"Message is too big: {size} bytes, the limit is {MAX_PAYLOAD_BYTES}.")
    return None


def _at(message: dict[str, Any], path: str) -> Any:
    value: Any = {"message": message}
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _wrong(path: str, value: Any, kind: str) -> Invalid:
    return Invalid(
        f"Invalid value at '{path}' ({kind}), {json.dumps(value)}", path, fcm_detail=False
    )
