"""What the console does, for the API and the pages alike: reads shaped by role, changes
with their audit row. Every change and every reveal of a full recipient is audited."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

import asyncpg
import redis
from starlette.concurrency import run_in_threadpool

from console import queries, search, views, why
from console.users import Role, User
from notify import dead_letters, suppressions
from notify.redis_clients import AsyncRedis, sync_client
from notify.settings import Settings
from notify.statements import literal
from notify.stream_info import read_group_info
from rules.ruleset import RuleSet, load_file
from schemas import Channel, NotifyError, Reason, RulesError, Status

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class BadRequest(NotifyError, ValueError):
    """The request names something that cannot be (a channel, a reason, a limit)."""


class Cancel(enum.Enum):
    DONE = "cancelled"
    NOT_FOUND = "not_found"
    NOT_SCHEDULED = "not_scheduled"


@dataclass(frozen=True)
class Search:
    """One API search: exactly one of the contract's parameters, or the search box's `q`."""

    field: str
    value: str
    limit: int


def limit_of(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise BadRequest(f"limit must be 1-{MAX_LIMIT}")
    return int(raw)


def channel_of(raw: Any) -> Channel:
    try:
        return Channel(raw)
    except ValueError:
        raise BadRequest("channel must be sms or push") from None


_AUDIT = 'INSERT INTO console_audit ("user", action, target) VALUES ($1, $2, $3)'

_CANCEL = f"""
UPDATE notifications SET status = {literal(Status.CANCELLED)}, cancelled_by = $2,
    updated_at = now()
WHERE id = $1 AND status = {literal(Status.SCHEDULED)}
RETURNING id
"""


class ConsoleService:
    def __init__(self, settings: Settings, db: asyncpg.Pool, client: AsyncRedis) -> None:
        self.settings = settings
        self.db = db
        self.client = client
        # notify/dead_letters.py speaks the blocking client; it runs in a thread.
        self.sync_client = sync_client(settings)

    def close(self) -> None:
        self.sync_client.close()

    async def audit(
        self, user: User, action: str, target: str, conn: asyncpg.Connection | None = None
    ) -> None:
        """One console_audit row; given `conn`, inside the transaction of the change."""
        await (conn or self.db).execute(_AUDIT, user.name, action, target)

    async def _revealed(self, user: User, target: str) -> None:
        """Support and above see recipients in full: each time, one audit row."""
        if user.role >= Role.SUPPORT:
            await self.audit(user, "reveal", target)

    def rules(self) -> RuleSet | None:
        try:
            return load_file(self.settings.rules_path)
        except (RulesError, OSError):
            return None

    def normalised(self, text: str) -> str:
        return search.recipient_of(text, self.settings.default_region)

    # Reads

    async def notifications(self, user: User, wanted: Search) -> list[dict[str, Any]]:
        region = self.settings.default_region
        if wanted.field == "q":
            lookups = search.lookups(wanted.value, region)
        elif wanted.field == "recipient":
            lookups = [search.Lookup(search.Field.RECIPIENT, self.normalised(wanted.value))]
        elif wanted.field == "subject":
            lookups = [search.Lookup(search.Field.SUBJECT, wanted.value)]
        else:
            lookups = [search.Lookup(search.Field.EVENT_ID, wanted.value)]
        rows = await queries.search(self.db, lookups, wanted.limit)
        shown = views.shown_for(user.role)
        if rows:
            await self._revealed(user, f"search {wanted.field}={wanted.value}")
        return [views.notification(r, shown) for r in rows]

    async def notification(self, user: User, notification_id: int) -> dict[str, Any] | None:
        found = await queries.detail(self.db, notification_id)
        if found is None:
            return None
        facts = why.rule_facts(self.rules(), found.notification)
        await self._revealed(user, f"notification {notification_id}")
        return views.detail(found, views.shown_for(user.role), facts)

    async def recipient(self, user: User, channel: Channel, raw: str) -> dict[str, Any]:
        recipient = self.normalised(raw) if channel is Channel.SMS else raw
        shown, text = views.shown_for(user.role), views.text_for(user.role)
        lookup = search.Lookup(search.Field.RECIPIENT, recipient)
        rows = await queries.find(self.db, lookup, DEFAULT_LIMIT)
        inbound = (
            await queries.inbound_from(self.db, recipient, DEFAULT_LIMIT)
            if channel is Channel.SMS
            else []
        )
        current, history = await queries.suppression_of(self.db, channel.value, recipient)
        await self._revealed(user, f"recipient {channel.value} {recipient}")
        return {
            "channel": channel.value,
            "recipient": shown(recipient),
            "notifications": [views.notification(r, shown) for r in rows],
            "inbound": [views.inbound(m, shown, text) for m in inbound],
            "suppression": views.suppression(current, shown),
            "suppression_history": [views.suppression_event(h, shown) for h in history],
        }

    async def recipient_of(self, user: User, notification_id: int) -> dict[str, Any] | None:
        """The recipient page of a notification's recipient (a viewer never sees the
        number, so pages link to it through the notification)."""
        rows = await queries.find(self.db, search.Lookup(search.Field.ID, str(notification_id)), 1)
        if not rows:
            return None
        return await self.recipient(user, Channel(rows[0]["channel"]), rows[0]["recipient"])

    async def event(self, user: User, event_id: str) -> dict[str, Any]:
        shown = views.shown_for(user.role)
        rows = await queries.find(self.db, search.Lookup(search.Field.EVENT_ID, event_id), 500)
        decided = await queries.decisions(self.db, event_id)
        subject = next((d["event_subject"] for d in decided if d["event_subject"]), None)
        cancelled = (
            await queries.cancelled_by(self.db, event_id, subject, DEFAULT_LIMIT) if subject else []
        )
        if rows or cancelled:
            await self._revealed(user, f"event {event_id}")
        lines = why.event_lines(event_id, decided, rows, len(cancelled), self.rules())
        return {
            "event_id": event_id,
            "notifications": [views.notification(r, shown) for r in rows],
            "cancelled": [views.notification(r, shown) for r in cancelled],
            "decisions": [views.decision(d) for d in decided],
            "explanation": " ".join(lines),
        }

    async def dead_letters(self, user: User, count: int = 1000) -> list[dict[str, Any]]:
        entries = await run_in_threadpool(
            dead_letters.dead_letters, self.sync_client, self.settings.dlq_stream, count
        )
        text = views.text_for(user.role)
        out = []
        for e in entries:
            item = e.as_json()
            item["detail"] = text(item["detail"])
            item["fields"] = {
                k.decode(errors="replace"): text(v.decode(errors="replace"))
                for k, v in e.original_fields().items()
            }
            out.append(item)
        if out:
            await self._revealed(user, "dead letters")
        return out

    async def suppressions(self, user: User) -> list[dict[str, Any]]:
        rows = await queries.suppressions(self.db, 1000)
        shown = views.shown_for(user.role)
        if rows:
            await self._revealed(user, "suppressions")
        return [s for s in (views.suppression(r, shown) for r in rows) if s is not None]

    async def stream(self) -> dict[str, Any]:
        s = self.settings
        try:
            info = await read_group_info(self.client, s.stream, s.group)
        except redis.ResponseError as exc:  # no such stream yet
            return {"stream": s.stream, "group": s.group, "error": str(exc)}
        return {
            "stream": s.stream,
            "group": s.group,
            "length": info.length,
            "lag": None if math.isnan(info.lag) else int(info.lag),
            "pending": info.pending,
            "consumers": info.consumers,
            "dead_letters": int(await self.client.xlen(s.dlq_stream)),
        }

    # Changes (operator)

    async def replay(self, user: User, dlq_id: str) -> list[str]:
        """As `notify dlq replay ID`: the dead letter goes back to the stream, once."""
        s = self.settings

        def run() -> list[str]:
            found = dead_letters.select(
                dead_letters.dead_letters(self.sync_client, s.dlq_stream, count=100_000), [dlq_id]
            )
            return dead_letters.replay(self.sync_client, s.stream, s.dlq_stream, found.entries)

        done: list[str] = await run_in_threadpool(run)
        for replayed in done:
            await self.audit(user, "replay", f"dead letter {replayed}")
        return done

    async def suppress(self, user: User, channel: Channel, raw: str, reason: Any) -> bool:
        try:
            why_ = Reason(reason or "manual")
        except ValueError:
            raise BadRequest(f"reason must be one of {', '.join(r for r in Reason)}") from None
        recipient = self.normalised(raw) if channel is Channel.SMS else raw.strip()
        if not recipient:
            raise BadRequest("recipient is empty")
        async with self.db.acquire() as conn, conn.transaction():
            added = await suppressions.suppress(
                conn, channel, recipient, why_, f"console:{user.name}"
            )
            if added:
                await self.audit(
                    user, "suppress", f"{channel.value} {recipient} ({why_.value})", conn
                )
        return added

    async def lift(self, user: User, channel: Channel, raw: str) -> bool:
        recipient = self.normalised(raw) if channel is Channel.SMS else raw.strip()
        async with self.db.acquire() as conn, conn.transaction():
            lifted = await suppressions.unsuppress(conn, channel, recipient, f"console:{user.name}")
            if lifted:
                await self.audit(user, "lift", f"{channel.value} {recipient}", conn)
        return lifted

    async def cancel(self, user: User, notification_id: int) -> Cancel:
        async with self.db.acquire() as conn, conn.transaction():
            done = await conn.fetchval(_CANCEL, notification_id, f"console:{user.name}")
            if done is None:
                exists = await conn.fetchval(
                    "SELECT 1 FROM notifications WHERE id = $1", notification_id
                )
                return Cancel.NOT_SCHEDULED if exists else Cancel.NOT_FOUND
            await self.audit(user, "cancel", f"notification {notification_id}", conn)
        return Cancel.DONE
