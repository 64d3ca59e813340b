"""Twilio's Messages list: its filters and its paging, as plain functions over resources.

Filters (all optional, combined with AND), as the 2010-04-01 OpenAPI description has them:

- ``To``, ``From``: the exact address.
- ``DateSent`` (on), ``DateSent<`` (on or before), ``DateSent>`` (on or after): whole GMT
  dates. The description asks for ``YYYY-MM-DD`` but its own examples pass full timestamps
  (``2019-06-11 22:05:25.000``, RFC 2822, ``06/11/2019 22:05:25 MST``) and get a normal
  page, and the twilio SDK sends ``2024-01-01T12:00:00Z``: the date as written counts, the
  time of day is ignored. A message not yet sent (no ``date_sent``) matches no date filter.
  A value that is no date at all gets 400 (the description names no error; ours is 20001).

Pages are newest first by ``DateSent``, as the documentation says; where messages with no
``date_sent`` yet (queued) go is undocumented: first by default, last with the script's
``"sms_list": {"queued": "last"}``. Ties keep the newest created first.
``next_page_uri`` and ``previous_page_uri`` are relative and carry a
``PageToken`` naming the message the page continues after (``PA<sid>``) or ends before
(``PB<sid>``), so paging stays consistent while new messages arrive. ``Page`` is only
echoed back ("simply for client state"); without a token it is read as an offset.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

FILTERS = ("To", "From", "DateSent", "DateSent<", "DateSent>")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:\s|$)")
_TOKEN = re.compile(r"^(PA|PB)([A-Za-z0-9]{34})$")


class ListError(ValueError):
    """A list request Twilio would refuse; the text is the error message."""


@dataclass(frozen=True)
class Query:
    given: dict[str, str]  # the filters as sent, echoed in the page URIs
    to: str | None
    from_: str | None
    on: date | None
    until: date | None
    since: date | None
    size: int
    page: int
    token: str | None


def parse_query(params: Mapping[str, str]) -> Query:
    given = {k: params[k] for k in FILTERS if params.get(k)}
    dates = {k: filter_date(v) for k, v in given.items() if k.startswith("DateSent")}
    try:
        size = int(params.get("PageSize") or DEFAULT_PAGE_SIZE)
        page = int(params.get("Page") or 0)
    except ValueError:
        raise ListError("PageSize and Page must be integers") from None
    if size < 1 or page < 0:
        raise ListError("PageSize must be at least 1 and Page at least 0")
    token = params.get("PageToken") or None
    if token is not None and not _TOKEN.match(token):
        raise ListError(f"Invalid PageToken {token}")
    return Query(
        given=given,
        to=given.get("To"),
        from_=given.get("From"),
        on=dates.get("DateSent"),
        until=dates.get("DateSent<"),
        since=dates.get("DateSent>"),
        # The SDK asks for PageSize=limit; Twilio serves at most 1000 a page.
        size=min(size, MAX_PAGE_SIZE),
        page=page,
        token=token,
    )


def filter_date(text: str) -> date:
    """The calendar date a DateSent value names; its time of day is ignored."""
    value = text.strip()
    try:
        return datetime.fromisoformat(value).date()  # 2024-01-02, ...T12:00:00Z, ... 12:00
    except ValueError:
        pass
    us = _US_DATE.match(value)
    if us:
        month, day, year = (int(g) for g in us.groups())
        try:
            return date(year, month, day)
        except ValueError:
            raise ListError(f"Invalid date {text}") from None
    try:
        return parsedate_to_datetime(value).date()  # RFC 2822
    except (TypeError, ValueError):
        raise ListError(f"Invalid date {text}") from None


def matches(resource: Mapping[str, Any], query: Query) -> bool:
    if query.to is not None and resource.get("to") != query.to:
        return False
    if query.from_ is not None and resource.get("from") != query.from_:
        return False
    if query.on is None and query.until is None and query.since is None:
        return True
    sent = resource.get("date_sent")
    if not sent:
        return False
    day = parsedate_to_datetime(sent).date()
    return (
        (query.on is None or day == query.on)
        and (query.until is None or day <= query.until)
        and (query.since is None or day >= query.since)
    )


def by_date_sent(
    newest_created_first: Sequence[Mapping[str, Any]], queued_last: bool
) -> list[Mapping[str, Any]]:
    """The list's order: newest `date_sent` first, unsent ones first or last (stable)."""
    sent = [r for r in newest_created_first if r.get("date_sent")]
    unsent = [r for r in newest_created_first if not r.get("date_sent")]
    sent.sort(key=lambda r: parsedate_to_datetime(r["date_sent"]), reverse=True)
    return [*sent, *unsent] if queued_last else [*unsent, *sent]


def build_page(matching: Sequence[Mapping[str, Any]], query: Query, path: str) -> dict[str, Any]:
    """One page of `matching` (newest first), in Twilio's list envelope."""
    start = _start(matching, query)
    chunk = list(matching[start : start + query.size])

    def uri(page: int, token: str | None = None) -> str:
        params: dict[str, Any] = {**query.given, "PageSize": query.size, "Page": page}
        if token is not None:
            params["PageToken"] = token
        return f"{path}?{urlencode(params)}"

    more = start + len(chunk) < len(matching)
    if query.page > 0 and start > 0:
        previous = uri(query.page - 1, f"PB{chunk[0]['sid']}" if chunk else None)
    else:
        previous = None
    return {
        "end": start + max(len(chunk) - 1, 0),
        "first_page_uri": uri(0),
        "messages": chunk,
        "next_page_uri": uri(query.page + 1, f"PA{chunk[-1]['sid']}") if more else None,
        "page": query.page,
        "page_size": query.size,
        "previous_page_uri": previous,
        "start": start,
        "uri": uri(query.page, query.token),
    }


def _start(matching: Sequence[Mapping[str, Any]], query: Query) -> int:
    if query.token is None:
        return query.page * query.size
    kind, sid = query.token[:2], query.token[2:]
    for index, resource in enumerate(matching):
        if resource["sid"] == sid:
            return index + 1 if kind == "PA" else max(index - query.size, 0)
    raise ListError(f"Invalid PageToken {query.token}")
