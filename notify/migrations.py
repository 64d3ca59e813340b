"""Versioned schema migrations, kept in code. Append only: never edit a shipped one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

import asyncpg

from notify import outbox_triggers, partitioning

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
        2,
        "receipts, inbound messages, the outcomes outbox, status skipped",
        """
        ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
        ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
            CHECK (status IN ('scheduled', 'pending', 'sending', 'sent', 'delivered',
                'undelivered', 'failed', 'cancelled', 'skipped'));
        -- Receipt lookups made for a `sent` SMS: they stop after a bound (tasks/receipts.py).
        ALTER TABLE notifications ADD COLUMN receipt_lookups integer NOT NULL DEFAULT 0;
        CREATE INDEX IF NOT EXISTS notifications_provider_message_id
            ON notifications (provider_message_id) WHERE provider_message_id IS NOT NULL;
        CREATE INDEX notifications_awaiting_receipt ON notifications (updated_at)
            WHERE status = 'sent' AND channel = 'sms';

        CREATE TABLE notification_receipts (
            id bigserial PRIMARY KEY,
            -- Null while no row has recorded this SID yet (the worker's commit in flight).
            notification_id bigint REFERENCES notifications (id) ON DELETE CASCADE,
            provider_message_id text NOT NULL,
            provider_status text NOT NULL,
            error_code text,
            source text NOT NULL CHECK (source IN ('callback', 'lookup')),
            idempotency_token text,
            received_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX notification_receipts_unmatched ON notification_receipts
            (provider_message_id) WHERE notification_id IS NULL;
        CREATE INDEX notification_receipts_notification ON notification_receipts
            (notification_id);

        -- Every signed inbound SMS, once per MessageSid (Twilio retries). Opt-out handling
        -- (interfaces section 6) builds on this table.
        CREATE TABLE inbound_messages (
            id bigserial PRIMARY KEY,
            message_sid text NOT NULL UNIQUE,
            account_sid text,
            from_number text NOT NULL,
            to_number text,
            body text NOT NULL DEFAULT '',
            opt_out_type text,
            params jsonb NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX inbound_messages_from ON inbound_messages (from_number, received_at);

        -- The transactional outbox of the outcomes stream (interfaces section 7): one row per
        -- entry to publish, deleted by the relay once it is in the stream. A queue table:
        -- vacuum it by count of dead rows, not by a fraction of a table that is mostly empty.
        CREATE TABLE outcome_outbox (
            id bigserial PRIMARY KEY,
            outcome_id text NOT NULL,
            type text NOT NULL,
            subject text,
            time timestamptz NOT NULL DEFAULT now(),
            data text NOT NULL
        ) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000);

        -- Statement triggers write the outbox row of every change of a notification to a
        -- published status (schemas.TERMINAL), in the statement that makes the change, so no
        -- status change commits without its outcome, whichever statement made it.
        -- The entry id `<notification id>-<status>` is stable: a row reaches each of these
        -- statuses at most once.
        CREATE FUNCTION outbox_inserted_notifications() RETURNS trigger
        LANGUAGE plpgsql AS $fn$
        BEGIN
            INSERT INTO outcome_outbox (outcome_id, type, subject, data)
            SELECT n.id || '-' || n.status, 'notification.' || n.status, n.event_subject,
                json_build_object('notification_id', n.id, 'event_id', n.event_id,
                    'rule', n.rule, 'channel', n.channel, 'recipient', n.recipient,
                    'status', n.status, 'error_code', n.error_code,
                    'provider_message_id', n.provider_message_id)::text
            FROM new_rows n
            WHERE n.status IN ('sent', 'delivered', 'undelivered', 'failed', 'skipped',
                'cancelled')
            ORDER BY n.id;
            RETURN NULL;
        END $fn$;

        CREATE FUNCTION outbox_updated_notifications() RETURNS trigger
        LANGUAGE plpgsql AS $fn$
        BEGIN
            INSERT INTO outcome_outbox (outcome_id, type, subject, data)
            SELECT n.id || '-' || n.status, 'notification.' || n.status, n.event_subject,
                json_build_object('notification_id', n.id, 'event_id', n.event_id,
                    'rule', n.rule, 'channel', n.channel, 'recipient', n.recipient,
                    'status', n.status, 'error_code', n.error_code,
                    'provider_message_id', n.provider_message_id)::text
            FROM new_rows n JOIN old_rows o ON o.id = n.id
            WHERE n.status IN ('sent', 'delivered', 'undelivered', 'failed', 'skipped',
                'cancelled')
              AND n.status <> o.status
            ORDER BY n.id;
            RETURN NULL;
        END $fn$;

        CREATE TRIGGER notifications_outbox_insert AFTER INSERT ON notifications
            REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION outbox_inserted_notifications();
        CREATE TRIGGER notifications_outbox_update AFTER UPDATE ON notifications
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION outbox_updated_notifications();
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
    # Versions apply in this list's order and each only once.
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
        -- Reconciliation skips messages already recorded on another row (version 2 made
        -- this index for receipts already).
        CREATE INDEX IF NOT EXISTS notifications_provider_message_id
            ON notifications (provider_message_id) WHERE provider_message_id IS NOT NULL;
        """,
    ),
    (
        # Last in the list (it landed after 4 and 5); it depends on none of them.
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
    (
        7,
        "the provider that holds each notification and made each attempt",
        """
        -- Chosen when a row is first claimed (tasks/providers/choice.py); it changes only
        -- after an attempt that proves the provider did not take the message (failover).
        ALTER TABLE notifications ADD COLUMN provider text
            CHECK (provider IN ('twilio', 'vonage', 'fcm'));
        ALTER TABLE notification_attempts ADD COLUMN provider text
            CHECK (provider IN ('twilio', 'vonage', 'fcm'));
        -- Before this version every SMS went to Twilio and every push to FCM. Rows never
        -- claimed have no provider yet: the first claim chooses one.
        UPDATE notifications SET provider = CASE channel WHEN 'sms' THEN 'twilio' ELSE 'fcm' END
            WHERE attempts > 0 OR provider_message_id IS NOT NULL;
        UPDATE notification_attempts a
            SET provider = CASE n.channel WHEN 'sms' THEN 'twilio' ELSE 'fcm' END
            FROM notifications n WHERE n.id = a.notification_id;
        -- Provider health reads the last minutes' attempts (tasks/weights.py).
        CREATE INDEX notification_attempts_finished ON notification_attempts (finished_at);
        -- Outcomes carry the provider as a CloudEvents extension attribute (a stream field
        -- of its own, beside `source`), so readers need not parse `data` to route on it.
        ALTER TABLE outcome_outbox ADD COLUMN provider text;
        """
        + outbox_triggers.FUNCTIONS,
    ),
    (
        8,
        "what SMS cost: segments, encoding, country, price",
        """
        -- Routing fills segments, encoding and country on SMS rows; rows from before this
        -- version get them from notify/backfills.py, which `notify migrate` runs after this
        -- in bounded batches (one segment counter: notify/segments.py, in Python).
        -- `price` is positive, in `price_unit`, once the provider reports it.
        ALTER TABLE notifications
            ADD COLUMN segments integer,
            ADD COLUMN encoding text CHECK (encoding IN ('GSM-7', 'UCS-2')),
            ADD COLUMN country text,
            ADD COLUMN price numeric,
            ADD COLUMN price_unit text,
            ADD COLUMN price_lookups integer NOT NULL DEFAULT 0,
            ADD COLUMN price_checked_at timestamptz;
        -- The price backfill's queue: sent SMS whose price Twilio has not reported yet.
        CREATE INDEX notifications_unpriced ON notifications (price_checked_at NULLS FIRST, id)
            WHERE channel = 'sms' AND price IS NULL AND provider_message_id IS NOT NULL;
        -- The segment backfill's queue; empty once it has run.
        CREATE INDEX notifications_unsegmented ON notifications (id)
            WHERE channel = 'sms' AND segments IS NULL;
        """,
    ),
    (
        6,
        "cancellations kept as facts",
        """
        -- Each cancelling event, kept while a reminder from an earlier event could still be
        -- written (notify/cancellations.py); beat's purge deletes it after `keep_until`.
        CREATE TABLE cancellations (
            subject text NOT NULL,
            event_id text NOT NULL,
            event_type text NOT NULL,
            event_time timestamptz NOT NULL,
            keep_until timestamptz NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (subject, event_id)
        );
        CREATE INDEX cancellations_keep_until ON cancellations (keep_until);
        """,
    ),
    (
        10,
        "outcome tables partitioned by event day",
        """
        -- Replaced by notifications_status (status, updated_at), which serves the sweeps of
        -- in-flight rows and `notify status`. The rest is notify/partitioning.py.
        DROP INDEX IF EXISTS notifications_in_flight;
        """,
    ),
    (
        9,
        "console audit and event decisions",
        """
        -- Who did what in the console (CONTRACT section 12): every change and every reveal.
        CREATE TABLE console_audit (
            id bigserial PRIMARY KEY,
            at timestamptz NOT NULL DEFAULT now(),
            "user" text NOT NULL,
            action text NOT NULL,
            target text NOT NULL
        );
        CREATE INDEX console_audit_at ON console_audit (at);
        -- "Why not?": the decisions of an event that the notifications cannot tell (no rule
        -- listened, or a rule's condition was false), written by the consumer off its hot
        -- path (consumer/decisions.py). Events whose every matched rule made a row have
        -- none: their rows say it all.
        CREATE TABLE event_decisions (
            event_id text NOT NULL,
            event_type text NOT NULL,
            event_subject text,
            event_time timestamptz NOT NULL,
            rules_version text NOT NULL,
            matched text[] NOT NULL,
            notified text[] NOT NULL,
            decided_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX event_decisions_event ON event_decisions (event_id);
        CREATE INDEX event_decisions_subject ON event_decisions (event_subject, decided_at)
            WHERE event_subject IS NOT NULL;
        CREATE INDEX event_decisions_decided ON event_decisions (decided_at);
        """,
    ),
]

# Versions whose work depends on what the database holds: Python, after the entry's SQL, in
# the same transaction.
STEPS: dict[int, Callable[[asyncpg.Connection], Awaitable[None]]] = {10: partitioning.convert}

# Any constant works; it only has to be the same in every process that migrates.
_LOCK_ID = 7_242_001


async def migrate(conn: asyncpg.Connection, *, before: int | None = None) -> list[int]:
    """Apply missing migrations in one transaction; concurrent runs queue on the lock.
    `before`: only the versions below it (tests of a database an older release made)."""
    wanted = [m for m in MIGRATIONS if before is None or m[0] < before]
    applied: list[int] = []
    # Slow but not blocking (concurrent index builds, validated checks): before the
    # transaction, whose locks it would otherwise hold for as long.
    if any(version in STEPS for version, *_ in wanted) and await _pending(conn, STEPS):
        await partitioning.prepare(conn)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_ID)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY, name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in wanted:
            if version in done:
                continue
            await conn.execute(sql)
            if version in STEPS:
                await STEPS[version](conn)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name
            )
            applied.append(version)
    return applied


async def _pending(conn: asyncpg.Connection, versions: Collection[int]) -> bool:
    """Whether a database that has tables lacks one of these versions."""
    if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
        return False
    done = await conn.fetchval(
        "SELECT count(*) FROM schema_migrations WHERE version = ANY($1::int[])", list(versions)
    )
    return bool(done < len(versions))
