"""The core both sides stand on: settings, logs, the outcome store, outages, task names.

`consumer/`, `tasks/` (and the webhook receiver) import from here and from `schemas/`, never
from each other; only `cli.main` dispatches to a side, lazily.
"""
