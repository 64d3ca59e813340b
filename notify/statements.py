"""The outcome store's statements that decide whether a notification goes out.

Every way a row can move towards a provider passes one of these, and each looks its
recipient up in `suppressions` by primary key as part of the statement itself (no round
trip of its own): the consumer's insert, a worker's claim, beat's dispatch of due reminders.
A suppression added at any time before the claim is honoured.
"""

from __future__ import annotations

from notify import documents
from notify.partitions import id_sql
from schemas import SUPPRESSED, Status, sql_list


def literal(status: Status) -> str:
    """A status as a SQL literal: statuses in SQL come from the enum, spelled once."""
    return f"'{status.value}'"


PENDING, SENDING, SCHEDULED = (
    literal(Status.PENDING),
    literal(Status.SENDING),
    literal(Status.SCHEDULED),
)
SKIPPED, FAILED = literal(Status.SKIPPED), literal(Status.FAILED)
CANCELLED = literal(Status.CANCELLED)
# The statuses of a row that will go out unless something stops it.
_GOING_OUT = frozenset({Status.PENDING, Status.SCHEDULED})

# A row for a suppressed recipient that would go out is stored `skipped` / `suppressed`
# instead: the check is a primary-key join in this statement, not a round trip of its own.
# A cancellable row whose cancel is already known is born `cancelled` (notify/cancellations.py;
# the caller holds its subjects' locks). The earliest such cancel names it.
# $1 is the batch as a JSON array of objects (notify/documents.py); an absent key is null.
# The id carries the event's day, which picks the partition (notify/partitions.py); the
# idempotency key is unique in each partition, so the conflict names no columns (no unique
# index on the parent can hold it).
_K = documents.KEYS
# What the statement stores instead of a document field, by column; the rest store theirs.
_STORED = {
    "status": f"""CASE WHEN cx.event_id IS NOT NULL THEN {CANCELLED}
         WHEN sp.reason IS NULL THEN {_K["status"]} ELSE {SKIPPED} END""",
    "cancel_on": f"COALESCE({_K['cancel_on']}, '{{}}')",
    "cancel_patterns": f"COALESCE({_K['cancel_patterns']}, '{{}}')",
    "error_code": f"""CASE WHEN sp.reason IS NULL OR cx.event_id IS NOT NULL
         THEN {_K["error_code"]} ELSE '{SUPPRESSED}' END""",
    "error_message": f"""CASE WHEN sp.reason IS NULL OR cx.event_id IS NOT NULL
         THEN {_K["error_message"]} ELSE 'recipient suppressed: ' || sp.reason END""",
}
_NAMES = ", ".join(c.name for c in documents.COLUMNS)
_VALUES = ",\n    ".join(_STORED.get(c.name, c.key) for c in documents.COLUMNS)
_ALIASES = ", ".join(c.key for c in documents.COLUMNS)

INSERT = f"""
INSERT INTO notifications (id, {_NAMES}, cancelled_by)
SELECT {id_sql("COALESCE(et, now())")},
    {_VALUES},
    cx.event_id
FROM ROWS FROM (json_to_recordset($1::json) AS ({documents.record_definition()}))
    WITH ORDINALITY AS u({_ALIASES}, n)
LEFT JOIN suppressions sp ON sp.channel = u.c AND sp.recipient = u.rc
    AND u.st IN {sql_list(_GOING_OUT)}
LEFT JOIN LATERAL (
    SELECT x.event_id FROM cancellations x
    WHERE u.cp IS NOT NULL AND u.st IN {sql_list(_GOING_OUT)} AND x.subject = u.s
      AND x.event_id <> u.e AND (u.et IS NULL OR u.et <= x.event_time)
      AND EXISTS (SELECT 1 FROM unnest(u.cp) p WHERE x.event_type ~ p)
    ORDER BY x.event_time, x.event_id LIMIT 1) cx ON true
-- A join may reorder rows; ids are handed out in batch (stream) order, as without one.
ORDER BY u.n
ON CONFLICT DO NOTHING
RETURNING id, channel, status, idempotency_key, error_code
"""

COLUMNS = """id, idempotency_key, event_id, event_type, rule, channel, recipient, body, title,
    data, status, attempts, provider_message_id, error_code, send_at, updated_at, push_id,
    unsure_since, lookup_failures, segments, encoding, country, provider"""

# A suppressed recipient's reminder is skipped even when overdue: it was never to be sent.
DISPATCH = f"""
WITH due AS (
    SELECT n.id, n.send_at < $1::timestamptz - make_interval(secs => $2) AS stale,
        sp.reason AS suppressed_by
    FROM notifications n
    LEFT JOIN suppressions sp ON sp.channel = n.channel AND sp.recipient = n.recipient
    WHERE n.status = {SCHEDULED} AND n.send_at <= $1
    ORDER BY n.send_at LIMIT $3 FOR UPDATE OF n SKIP LOCKED)
UPDATE notifications n SET updated_at = now(),
    status = CASE WHEN due.suppressed_by IS NOT NULL THEN {SKIPPED}
                  WHEN due.stale THEN {FAILED} ELSE {PENDING} END,
    error_code = CASE WHEN due.suppressed_by IS NOT NULL THEN '{SUPPRESSED}'
                      WHEN due.stale THEN 'expired' ELSE n.error_code END,
    error_message = CASE WHEN due.suppressed_by IS NOT NULL
                         THEN 'recipient suppressed: ' || due.suppressed_by
                         WHEN due.stale THEN 'overdue past the staleness limit'
                         ELSE n.error_message END
FROM due WHERE n.id = due.id
RETURNING n.id, n.channel, n.status
"""

# The snapshot's view of the suppression is enough: one committed after it is a suppression
# that landed after the claim. The re-check of `n.status` after a row lock decides which of
# two concurrent claims wins, as a plain UPDATE ... WHERE status = 'pending' would.
# $2 is the provider the worker picked for each id (CONTRACT section 13): it sticks only to
# a row that has none yet, so a row keeps its provider from the first claim on.
CLAIM = f"""
WITH c AS (
    SELECT n.id AS claim_id, sp.reason AS suppressed_by, u.pick
    FROM unnest($1::bigint[], $2::text[]) AS u(id, pick)
    JOIN notifications n ON n.id = u.id
    LEFT JOIN suppressions sp ON sp.channel = n.channel AND sp.recipient = n.recipient
    WHERE n.status = {PENDING})
UPDATE notifications n SET updated_at = now(),
    status = CASE WHEN c.suppressed_by IS NULL THEN {SENDING} ELSE {SKIPPED} END,
    attempts = n.attempts + CASE WHEN c.suppressed_by IS NULL THEN 1 ELSE 0 END,
    provider = CASE WHEN c.suppressed_by IS NULL THEN COALESCE(n.provider, c.pick)
                    ELSE n.provider END,
    error_code = CASE WHEN c.suppressed_by IS NULL THEN n.error_code ELSE '{SUPPRESSED}' END,
    error_message = CASE WHEN c.suppressed_by IS NULL THEN n.error_message
                         ELSE 'recipient suppressed: ' || c.suppressed_by END
FROM c WHERE n.id = c.claim_id AND n.status = {PENDING}
RETURNING {COLUMNS}
"""
