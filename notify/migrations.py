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
    (
        4,
        "sending politely: skipped status, throttles, send-rate slots",
        """
        -- 'skipped' (throttled, suppressed): dropped and re-added, so it composes with any
        -- other migration that widens the same check.
        ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_status_check;
        ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
            CHECK (status IN ('scheduled', 'pending', 'sending', 'sent', 'delivered',
                'undelivered', 'failed', 'cancelled', 'skipped'));
        -- One row per (rule, rendered key, recipient): its current window and how many
        -- notifications were counted in it. Counted with an upsert, so the row lock decides.
        CREATE TABLE notification_throttles (
            rule text NOT NULL,
            key text NOT NULL,
            recipient text NOT NULL,
            window_start timestamptz NOT NULL,
            window_end timestamptz NOT NULL,
            count integer NOT NULL,
            PRIMARY KEY (rule, key, recipient)
        );
        CREATE INDEX notification_throttles_end ON notification_throttles (window_end);
        -- A pending SMS whose send-rate slot is further ahead than a task may wait: beat
        -- enqueues it shortly before the slot (Postgres is the schedule, as for reminders).
        ALTER TABLE notifications ADD COLUMN slot_at timestamptz;
        CREATE INDEX notifications_slots ON notifications (slot_at)
            WHERE status = 'pending' AND slot_at IS NOT NULL;
        """,
    ),
    (
        # After 4 in the list: numbers are reserved per issue, and this one depends on no other.
        3,
        "suppressions and their history",
        """
        -- One row per (channel, recipient): the consumer, the workers and beat look it up by
        -- the primary key inside the statements that insert, claim and dispatch rows.
        CREATE TABLE suppressions (
            channel text NOT NULL CHECK (channel IN ('sms', 'push')),
            recipient text NOT NULL,
            reason text NOT NULL CHECK (reason IN ('opt_out', '21610', 'unregistered',
                'invalid_token', 'manual')),
            source text NOT NULL,
            -- Stored as given but unlike the notifications' recipients ('not_e164').
            flag text,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (channel, recipient)
        );
        -- Every change with its source (an inbound message SID, the notification a provider
        -- refused, an operator); kept after a suppression is lifted.
        CREATE TABLE suppression_events (
            id bigserial PRIMARY KEY,
            action text NOT NULL CHECK (action IN ('added', 'lifted')),
            channel text NOT NULL,
            recipient text NOT NULL,
            reason text NOT NULL,
            source text NOT NULL,
            flag text,
            at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX suppression_events_recipient ON suppression_events (channel, recipient, at);
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
