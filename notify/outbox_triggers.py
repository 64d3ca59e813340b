"""The outbox's trigger functions on `notifications`, written once.

Every change of a row to a status in TERMINAL writes its outcomes-stream entry to
`outcome_outbox` in the statement's own transaction (interfaces section 7). The insert and
update triggers differ only in which rows they read; the status set comes from schemas.
"""

from __future__ import annotations

from schemas import TERMINAL, sql_list

_ENTRY = """
        INSERT INTO outcome_outbox (outcome_id, type, subject, data, provider)
        SELECT n.id || '-' || n.status, 'notification.' || n.status, n.event_subject,
            json_build_object('notification_id', n.id, 'event_id', n.event_id,
                'rule', n.rule, 'channel', n.channel, 'recipient', n.recipient,
                'status', n.status, 'error_code', n.error_code,
                'provider_message_id', n.provider_message_id)::text, n.provider
        FROM {rows}
        WHERE n.status IN {statuses}{changed}
        ORDER BY n.id;"""


def _function(name: str, rows: str, changed: str) -> str:
    body = _ENTRY.format(rows=rows, statuses=sql_list(TERMINAL), changed=changed)
    return f"""
    CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $fn$
    BEGIN{body}
        RETURN NULL;
    END $fn$;"""


FUNCTIONS = _function("outbox_inserted_notifications", "new_rows n", "") + _function(
    "outbox_updated_notifications",
    "new_rows n JOIN old_rows o ON o.id = n.id",
    "\n          AND n.status <> o.status",
)
