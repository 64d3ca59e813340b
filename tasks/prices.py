"""What Twilio charged: beat backfills `price` / `price_unit` of sent SMS.

Twilio sets a message's price when its carrier bills it, often hours after sending, and
sends no callback for it. Each run makes at most NOTIFY_PRICE_LOOKUPS_PER_RUN lookups,
least recently asked rows first; a row is asked at most once per
NOTIFY_PRICE_LOOKUP_INTERVAL_SECONDS and at most NOTIFY_PRICE_MAX_LOOKUPS times. A run
stops at the first transient answer (429 included): the rest wait for the next run.
"""

from __future__ import annotations

from collections import Counter

from notify import logs, task_names
from notify.costs import Price, count_prices
from schemas import ConfigurationError, PermanentDeliveryError, TransientDeliveryError
from tasks.app import app
from tasks.runtime import Runtime, runtime

log = logs.get("prices")


@app.task(name=task_names.BACKFILL_PRICES, shared=False, ignore_result=True)
def backfill_prices() -> dict[str, int]:
    return backfill(runtime(app.settings))


def backfill(rt: Runtime) -> dict[str, int]:
    s = rt.settings
    due = rt.db.unpriced(
        limit=s.price_lookups_per_run,
        interval_seconds=s.price_lookup_interval_seconds,
        max_lookups=s.price_max_lookups,
    )
    prices: list[Price] = []
    counts: Counter[str] = Counter()
    for row in due:
        try:
            found = rt.sms.fetch_price(row.provider_message_id)
        except (TransientDeliveryError, ConfigurationError) as exc:
            counts["stopped"] += 1
            level = log.error if isinstance(exc, ConfigurationError) else log.warning
            level("price lookups stopped", extra=logs.fields(error_code=exc.code, due=len(due)))
            break
        except PermanentDeliveryError:
            counts["not_found"] += 1
            continue
        if found is None:
            counts["unpriced"] += 1
            continue
        prices.append(Price(row.provider_message_id, *found))
    priced = rt.db.record_prices(prices) if prices else []
    count_prices(priced)
    counts["priced"] = len(priced)
    if counts["priced"]:
        log.info("prices recorded", extra=logs.fields(priced=counts["priced"]))
    return dict(counts)
