"""Incoming SMS in Postgres (`inbound_messages`): recorded once per MessageSid.

Opt-out handling (interfaces section 6, the next issue) reads these rows; the table keeps every
form field Twilio sent (`params`), so it can be built on without another migration.
"""

from __future__ import annotations

from collections.abc import Mapping

import asyncpg
import msgspec


class InboundMessage(msgspec.Struct, frozen=True, kw_only=True):
    message_sid: str
    from_number: str
    to_number: str | None
    body: str
    account_sid: str | None
    opt_out_type: str | None
    params: dict[str, str]

    @classmethod
    def from_form(cls, form: Mapping[str, str]) -> InboundMessage:
        return cls(
            message_sid=form["MessageSid"],
            from_number=form["From"],
            to_number=form.get("To"),
            body=form.get("Body", ""),
            account_sid=form.get("AccountSid"),
            opt_out_type=form.get("OptOutType") or None,
            params=dict(form),
        )


_json = msgspec.json.Encoder()


class InboundStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def record(self, message: InboundMessage, conn: asyncpg.Connection | None = None) -> bool:
        """True if new; Twilio's retry of the same message is a harmless no-op. Given a
        connection, inside its transaction (with what the message asks for)."""
        inserted = await (conn or self.pool).fetchval(
            """INSERT INTO inbound_messages (message_sid, account_sid, from_number, to_number,
                   body, opt_out_type, params)
               VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)
               ON CONFLICT (message_sid) DO NOTHING RETURNING id""",
            message.message_sid,
            message.account_sid,
            message.from_number,
            message.to_number,
            message.body,
            message.opt_out_type,
            _json.encode(message.params).decode(),
        )
        return inserted is not None

    async def delete_older_than(self, *, days: float, limit: int) -> int:
        result = await self.pool.execute(
            """DELETE FROM inbound_messages WHERE id IN (
                   SELECT id FROM inbound_messages
                   WHERE received_at < now() - make_interval(secs => $1 * 86400) LIMIT $2)""",
            days,
            limit,
        )
        return int(result.split()[-1])
