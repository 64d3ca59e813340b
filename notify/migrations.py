"""Versioned schema migrations, kept in code. Append only: never edit a shipped one."""

from __future__ import annotations

import asyncpg

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "notifications and attempts",
        """
        CREATE TABLE notifications (
            id bigserial PRIMARY KEY,
            idempotency_key text NOT NULL UNIQUE,
            event_id text NOT NULL,
            event_type text NOT NULL,
            event_subject text,
            rule text NOT NULL,
            channel text NOT NULL CHECK (channel IN ('sms', 'push')),
            recipient text NOT NULL,
            title text,
            body text NOT NULL,
            data jsonb,
            status text NOT NULL CHECK (status IN ('scheduled', 'pending', 'sending', 'sent',
                'delivered', 'undelivered', 'failed', 'cancelled')),
            provider_message_id text,
            attempts integer NOT NULL DEFAULT 0,
            error_code text,
            error_message text,
            send_at timestamptz,
            cancel_on text[] NOT NULL DEFAULT '{}',
            cancel_patterns text[] NOT NULL DEFAULT '{}',
            cancelled_by text,
            rules_version text,
            event_time timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX notifications_due ON notifications (send_at) WHERE status = 'scheduled';
        CREATE INDEX notifications_scheduled_subject ON notifications (event_subject)
            WHERE status = 'scheduled';
        CREATE INDEX notifications_in_flight ON notifications (updated_at)
            WHERE status IN ('pending', 'sending');
        CREATE INDEX notifications_event ON notifications (event_id);
        CREATE INDEX notifications_created ON notifications (created_at);
        CREATE TABLE notification_attempts (
            id bigserial PRIMARY KEY,
            notification_id bigint NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
            attempt integer NOT NULL,
            started_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            outcome text NOT NULL DEFAULT 'started',
            error_code text,
            error_message text,
            provider_message_id text,
            UNIQUE (notification_id, attempt)
        );
        """,
    ),
    # Issue 12 owns version 5 (2-4 are reserved for issues 13-15; versions apply in this
    # list's order and each only once, so a gap is harmless).
    (
        5,
        "lost answers and push identifier kinds",
        """
        ALTER TABLE notifications
            ADD COLUMN unsure_since timestamptz,
            ADD COLUMN lookup_failures integer NOT NULL DEFAULT 0,
            -- Push rows: which identifier `recipient` is. Null on SMS rows, and on push
            -- rows from before this version, which were all registration tokens.
            ADD COLUMN push_id text CHECK (push_id IN ('token', 'fid'));
        -- Rows waiting to retry after a lost answer keep looking before they send: the
        -- code before this version knew them by their error code alone. 5 minutes is the
        -- margin its lookup used.
        UPDATE notifications SET unsure_since = updated_at - interval '5 minutes'
            WHERE channel = 'sms' AND status IN ('pending', 'sending')
              AND error_code IN ('timeout', 'connection_error', 'reconcile_failed');
        -- Reconciliation skips messages already recorded on another row.
        CREATE INDEX notifications_provider_message_id ON notifications (provider_message_id)
            WHERE provider_message_id IS NOT NULL;
        """,
    ),
]

# Any constant works; it only has to be the same in every process that migrates.
_LOCK_ID = 7_242_001


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply missing migrations in one transaction; concurrent runs queue on the lock."""
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY, name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in MIGRATIONS:
            if version in done:
                continue
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
            )
            applied.append(version)
    return applied
