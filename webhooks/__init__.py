"""`notify webhooks`: the HTTP server for what Twilio sends back (docs/interfaces.md section 6).

A third side next to `consumer/` and `tasks/`: it shares the core (settings, logs, the store)
and meets the others only in Postgres. Status callbacks become receipts that settle rows;
inbound SMS are recorded. Entry point: `webhooks.server.serve`.
"""
