"""One frozen settings object, built from the environment once and passed down.

Each setting is declared once, as a field: its environment variable, default, parser and
documentation travel together in the field's metadata. `Settings.from_env` reads them, and
`docs/configuration.md` is generated from them (`make docs`; a test fails when it is stale).
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Parse = Callable[[str, str], Any]  # (raw text, variable name) -> value; ValueError if bad


def text(raw: str, _: str) -> str:
    return raw


def url(raw: str, _: str) -> str:
    """A base URL: a trailing slash is dropped so paths join cleanly."""
    return raw.rstrip("/")


def number(raw: str, name: str) -> float:
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


def integer(raw: str, name: str) -> int:
    return int(number(raw, name))


def at_least(low: int) -> Parse:
    def parse(raw: str, name: str) -> int:
        return max(low, integer(raw, name))

    return parse


def within(low: float, high: float) -> Parse:
    """A number in (low, high]."""

    def parse(raw: str, name: str) -> float:
        value = number(raw, name)
        if not low < value <= high:
            raise ValueError(f"{name} must be in ({low:g}, {high:g}], got {value:g}")
        return value

    return parse


def rate(raw: str, name: str) -> float | None:
    """A positive rate, or None (0: no limit)."""
    value = number(raw, name)
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value:g}")
    return value or None


SMS_PROVIDERS = ("twilio", "vonage")


def providers(raw: str, name: str) -> tuple[str, ...]:
    """SMS providers in order of preference, e.g. `twilio,vonage`."""
    names = tuple(p.strip().lower() for p in raw.split(",") if p.strip())
    if not names or any(p not in SMS_PROVIDERS for p in names) or len(set(names)) != len(names):
        message = f"{name} must name each of {', '.join(SMS_PROVIDERS)} at most once"
        raise ValueError(f"{message}, got {raw!r}")
    return names


def shares(raw: str, name: str) -> tuple[tuple[str, float], ...]:
    """`twilio=80,vonage=20`: a share per provider (checked against the providers in use by
    `Settings.__post_init__`)."""
    given: dict[str, float] = {}
    for part in raw.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        try:
            share = float(value) if sep else -1.0
        except ValueError:
            share = -1.0
        if key not in SMS_PROVIDERS or share < 0 or key in given:
            raise ValueError(
                f"{name} must be provider=share pairs, e.g. twilio=80,vonage=20; got {raw!r}"
            )
        given[key] = share
    if not any(given.values()):
        raise ValueError(f"{name} gives every provider a share of 0: {raw!r}")
    return tuple(given.items())


def zone(raw: str, name: str) -> str:
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        message = f"{name} must be an IANA time zone like Europe/London, got {raw!r}"
        raise ValueError(message) from None
    return raw


def upper(raw: str, _: str) -> str:
    return raw.upper()


def boolean(raw: str, name: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")


_COUNTRY = re.compile(r"^[A-Z]{2}$")


def countries(raw: str, name: str) -> frozenset[str] | None:
    """ISO 3166 alpha-2 codes, comma-separated; empty: None (any country)."""
    codes = frozenset(c.strip().upper() for c in raw.split(",") if c.strip())
    bad = sorted(c for c in codes if not _COUNTRY.match(c))
    if bad:
        raise ValueError(f"{name} must list ISO 3166 country codes like US,GB, got {bad}")
    return codes or None


def limit(raw: str, name: str) -> int | None:
    """A positive whole number, or None (0: no limit)."""
    value = integer(raw, name)
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return value or None


@dataclass(frozen=True)
class Spec:
    """Where a setting comes from and what it means."""

    env: tuple[str, ...]  # the first that is set and not empty wins
    doc: str
    parse: Parse
    section: str
    shown: str | None  # the default as the documentation shows it; None: the value
    derive: Callable[[dict[str, Any]], Any] | None  # a default computed from other settings


_section = "Streams and rules"


def setting(
    env: str | tuple[str, ...],
    default: Any,
    doc: str,
    parse: Parse = text,
    *,
    shown: str | None = None,
    derive: Callable[[dict[str, Any]], Any] | None = None,
) -> Any:
    """Declare a setting: a dataclass field whose metadata is its Spec."""
    names = (env,) if isinstance(env, str) else env
    spec = Spec(names, doc, parse, _section, shown, derive)
    return field(default=default, metadata={"spec": spec})


def section(title: str) -> None:
    """Settings declared after this call are documented under `title`."""
    global _section
    _section = title


def _consumer_name(_: dict[str, Any]) -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"


@dataclass(frozen=True, kw_only=True)
class Settings:
    section("Streams and rules")
    redis_url: str = setting(
        "REDIS_URL", "redis://localhost:6379/0", "Redis holding the event stream"
    )
    stream: str = setting("NOTIFY_STREAM", "events", "the event stream")
    group: str = setting("NOTIFY_GROUP", "notifications", "the consumer group")
    dlq_stream: str = setting(
        "NOTIFY_DLQ_STREAM",
        "events.dlq",
        "the dead-letter stream",
        shown="`<stream>.dlq`",
        derive=lambda values: f"{values['stream']}.dlq",
    )
    rules_path: str = setting(
        "NOTIFY_RULES", "rules.yaml", "rules file; edits are picked up without a restart"
    )
    rules_poll_seconds: float = setting(
        "NOTIFY_RULES_POLL_SECONDS", 1.0, "how often the consumer looks for a changed rules file",
        number,
    )  # fmt: skip
    consumer_name: str = setting(
        "NOTIFY_CONSUMER_NAME",
        "",
        "this consumer's name in the group; a stable one (a pod name) lets a restarted "
        "consumer re-read its own pending entries",
        shown="host-pid-random",
        derive=_consumer_name,
    )
    batch_size: int = setting("NOTIFY_BATCH_SIZE", 500, "entries per `XREADGROUP`", integer)
    block_ms: int = setting("NOTIFY_BLOCK_MS", 1000, "`XREADGROUP` block time (ms)", integer)
    linger_ms: float = setting(
        "NOTIFY_BATCH_LINGER_MS",
        10.0,
        "after a short read the consumer waits this long for more events, so a trickle "
        "still makes batches (full batches never wait)",
        number,
    )
    claim_idle_seconds: float = setting(
        "NOTIFY_CLAIM_IDLE_SECONDS",
        60.0,
        "entries pending this long on a consumer that stopped are claimed by a live one",
        number,
    )
    consumer_reap_seconds: float = setting(
        "NOTIFY_CONSUMER_REAP_SECONDS",
        3600.0,
        "a consumer of the group idle this long with no pending entries is removed from it "
        "by a live one (one holding entries never is)",
        number,
    )
    max_event_bytes: int = setting(
        "NOTIFY_MAX_EVENT_BYTES",
        65536,
        "a stream entry larger than this in all is dead-lettered as `oversized`",
        integer,
    )
    max_deliveries: int = setting(
        "NOTIFY_MAX_DELIVERIES",
        5,
        "an entry delivered this many times without success is dead-lettered (`max_deliveries`)",
        integer,
    )
    insert_connections: int = setting(
        "NOTIFY_INSERT_CONNECTIONS",
        2,
        "a batch of 200 rows or more is inserted over this many connections at once, shared "
        "out by (rule, recipient) so each idempotency key and throttle group stays in one "
        "statement",
        at_least(1),
    )
    default_region: str = setting(
        "NOTIFY_DEFAULT_REGION", "US", "the region of phone numbers written without `+`"
    )
    default_timezone: str = setting(
        "NOTIFY_DEFAULT_TIMEZONE",
        "UTC",
        "quiet hours: the zone of a recipient with no rule `timezone` and no zone from its number",
        zone,
    )
    stale_after_seconds: float = setting(
        "NOTIFY_STALE_AFTER_SECONDS",
        3600.0,
        "a reminder overdue by more than this fails as `expired` instead of going out late",
        number,
    )
    metrics_port: int = setting(
        "NOTIFY_METRICS_PORT", 9464, "the consumer's Prometheus `/metrics` (0: off)", integer
    )
    stream_sample_seconds: float = setting(
        "NOTIFY_STREAM_SAMPLE_SECONDS",
        5.0,
        "how often the consumer and the workers read lag and pending for `/metrics` "
        "(at most 15: the contract's refresh promise)",
        within(0, 15),
    )

    redis_cluster: bool = setting(
        "NOTIFY_REDIS_CLUSTER",
        False,
        "`true` when `REDIS_URL` names a node of a Redis Cluster: every client for it is then "
        "a cluster client (the Celery broker must not be the cluster)",
        boolean,
    )

    section("Postgres")
    database_url: str = setting("DATABASE_URL", "postgresql://localhost/notifications", "Postgres")
    statement_cache_size: int = setting(
        "NOTIFY_DB_STATEMENT_CACHE_SIZE",
        100,
        "prepared statements each Postgres connection keeps (asyncpg's cache); 0 when "
        "`DATABASE_URL` points at PgBouncer or another transaction-mode pooler",
        at_least(0),
    )
    retention_days: float = setting(
        "NOTIFY_RETENTION_DAYS",
        90.0,
        "notifications older than this are removed: a day's partitions are dropped whole once "
        "all of the day is older (docs/history.md)",
        number,
    )
    partitions_seconds: float = setting(
        "NOTIFY_PARTITIONS_SECONDS",
        600.0,
        "how often beat creates the next week's day partitions and drops days past retention",
        within(0, 86400),
    )

    section("Celery and delivery")
    broker_url: str = setting("CELERY_BROKER_URL", "redis://localhost:6379/0", "the Celery broker")
    result_backend: str = setting(
        "CELERY_RESULT_BACKEND", "redis://localhost:6379/1", "the Celery result backend"
    )
    task_queue: str = setting("NOTIFY_TASK_QUEUE", "celery", "the Celery queue of send tasks")
    task_batch_size: int = setting(
        "NOTIFY_TASK_BATCH_SIZE",
        50,
        "rows per `send_batch` message (1 publishes one task per row)",
        integer,
    )
    worker_metrics_port: int = setting(
        "NOTIFY_WORKER_METRICS_PORT",
        9465,
        "the workers' Prometheus `/metrics` (all pool processes together)",
        integer,
    )
    visibility_timeout_seconds: float = setting(
        "NOTIFY_VISIBILITY_TIMEOUT_SECONDS",
        300.0,
        "a Celery task not acknowledged within this is redelivered (broker visibility timeout)",
        number,
    )
    stuck_seconds: float = setting(
        "NOTIFY_STUCK_SECONDS",
        300.0,
        "the sweeper re-enqueues rows left `pending`, and resolves rows left `sending`, "
        "longer than this",
        number,
    )
    schedule_interval_seconds: float = setting(
        "NOTIFY_SCHEDULE_INTERVAL_SECONDS",
        5.0,
        "how often beat dispatches due scheduled rows",
        number,
    )
    max_send_attempts: int = setting(
        "NOTIFY_MAX_SEND_ATTEMPTS", 5, "provider calls per notification at most", integer
    )
    retry_base_seconds: float = setting(
        "NOTIFY_RETRY_BASE_SECONDS", 1.0, "first backoff of a transient error", number
    )
    retry_max_seconds: float = setting(
        "NOTIFY_RETRY_MAX_SECONDS", 60.0, "longest backoff of a transient error", number
    )
    quota_retry_base_seconds: float = setting(
        "NOTIFY_QUOTA_RETRY_BASE_SECONDS", 60.0,
        "first wait after an FCM quota answer without Retry-After (FCM asks for >= 60 s); "
        "it doubles with each attempt",
        number,
    )  # fmt: skip
    provider_timeout_seconds: float = setting(
        "NOTIFY_PROVIDER_TIMEOUT_SECONDS", 10.0, "timeout of each provider HTTP call", number
    )
    send_concurrency: int = setting(
        "NOTIFY_SEND_CONCURRENCY", 64, "provider calls in flight per worker process", integer
    )
    reconcile_wait_seconds: float = setting(
        "NOTIFY_RECONCILE_WAIT_SECONDS", 300.0,
        "how long after a send whose answer was lost Twilio's Messages list is first asked "
        "for it (the list lags recent messages by minutes)",
        number,
    )  # fmt: skip
    reconcile_budget_seconds: float = setting(
        "NOTIFY_RECONCILE_BUDGET_SECONDS",
        3600.0,
        "how long an SMS whose answer was lost keeps asking the provider whether it has it, "
        "while those lookups fail, before it fails as `outcome_unknown` (never sent blind)",
        number,
    )
    log_level: str = setting(
        ("NOTIFY_LOG_LEVEL", "LOG_LEVEL"), "INFO", "log level (`LOG_LEVEL` also works)", upper
    )
    # prometheus-client's own variable: set for prefork workers (see tasks/metrics.py).
    prometheus_multiproc_dir: str | None = setting(
        "PROMETHEUS_MULTIPROC_DIR",
        None,
        "prometheus-client's directory for prefork workers' metrics",
    )

    section("Twilio")
    twilio_account_sid: str | None = setting("TWILIO_ACCOUNT_SID", None, "Twilio account SID")
    twilio_auth_token: str | None = setting(
        "TWILIO_AUTH_TOKEN", None, "Twilio auth token; also checks webhook signatures"
    )
    twilio_phone_number: str | None = setting(
        "TWILIO_PHONE_NUMBER", None, "the number SMS are sent from"
    )
    twilio_api_url: str = setting(
        "TWILIO_API_URL", "https://api.twilio.com", "Twilio base URL (a mock, a proxy)", url
    )
    twilio_messaging_service_sid: str | None = setting(
        "TWILIO_MESSAGING_SERVICE_SID",
        None,
        "send SMS through this Messaging Service (`MessagingServiceSid`, no `From`) instead "
        "of `TWILIO_PHONE_NUMBER`",
    )
    sms_segments_per_second: float | None = setting(
        "NOTIFY_SMS_SEGMENTS_PER_SECOND",
        None,
        "SMS segments per second for the sender (the number, or the Messaging Service), "
        "shared by every worker",
        rate,
        shown="unset: no limit",
    )
    sms_backlog_alert_seconds: float = setting(
        "NOTIFY_SMS_BACKLOG_ALERT_SECONDS",
        3600.0,
        "the drain time above which `NotifySmsBacklogSlowToDrain` fires",
        number,
    )

    section("A second SMS provider: Vonage, routing and failover")
    sms_providers: tuple[str, ...] = setting(
        "NOTIFY_SMS_PROVIDERS",
        ("twilio",),
        "the SMS providers to use, from `twilio` and `vonage`, in order of preference",
        providers,
        shown="`twilio`",
    )
    sms_provider_weights: tuple[tuple[str, float], ...] | None = setting(
        "NOTIFY_SMS_PROVIDER_WEIGHTS",
        None,
        "a share of new SMS per provider, e.g. `twilio=80,vonage=20`; the providers' health "
        "moves traffic away from these shares and back (docs/operations.md)",
        shares,
        shown="unset: all to the first",
    )
    vonage_application_id: str | None = setting(
        "VONAGE_APPLICATION_ID", None, "the Vonage application that sends (its JWTs)"
    )
    vonage_private_key: str | None = setting(
        "VONAGE_PRIVATE_KEY", None, "a file: the Vonage application's private key (PEM)"
    )
    vonage_from: str | None = setting(
        "VONAGE_FROM", None, "the number (or alphanumeric sender) Vonage SMS are sent from"
    )
    vonage_api_url: str = setting(
        "VONAGE_API_URL", "https://api.nexmo.com", "Vonage base URL (a mock, a proxy)", url
    )
    vonage_signature_secret: str | None = setting(
        "VONAGE_SIGNATURE_SECRET",
        None,
        "the account's signature secret: Vonage's webhooks are JWTs signed with it (HS256)",
    )
    sms_health_interval_seconds: float = setting(
        "NOTIFY_SMS_HEALTH_INTERVAL_SECONDS",
        15.0,
        "how often beat weighs the SMS providers' health and moves traffic",
        number,
    )
    sms_slow_delivery_seconds: float = setting(
        "NOTIFY_SMS_SLOW_DELIVERY_SECONDS",
        300.0,
        "a delivery receipt later than this after the send counts as slow delivery",
        number,
    )

    section("SMS cost and countries")
    sms_countries: frozenset[str] | None = setting(
        "NOTIFY_SMS_COUNTRIES",
        None,
        "the ISO 3166 country codes SMS may go to, e.g. `US,CA,GB`; an SMS to any other "
        "country fails as `country_not_allowed` and no provider is called",
        countries,
        shown="unset: any",
    )
    sms_country_hourly_segments: int | None = setting(
        "NOTIFY_SMS_COUNTRY_HOURLY_SEGMENTS",
        None,
        "when the segments sent to one country in the last hour reach this, further SMS to "
        "it are `skipped` / `country_paused` (`notify sms resume COUNTRY` lifts it)",
        limit,
        shown="unset: no limit",
    )
    price_lookups_per_run: int = setting(
        "NOTIFY_PRICE_LOOKUPS_PER_RUN",
        100,
        "at most this many Twilio message lookups per beat run to backfill `price`",
        integer,
    )
    price_lookup_interval_seconds: float = setting(
        "NOTIFY_PRICE_LOOKUP_INTERVAL_SECONDS",
        1800.0,
        "a sent SMS without a price is looked up at most once per this interval",
        number,
    )
    price_max_lookups: int = setting(
        "NOTIFY_PRICE_MAX_LOOKUPS",
        48,
        "lookups per SMS after which its price is left unknown",
        integer,
    )

    section("Firebase Cloud Messaging")
    google_credentials: str = setting(
        "GOOGLE_APPLICATION_CREDENTIALS",
        "serviceAccountKey.json",
        "Firebase service-account file; its `token_uri` is honoured",
    )
    fcm_api_url: str = setting(
        "FCM_API_URL", "https://fcm.googleapis.com", "FCM base URL (a mock, a proxy)", url
    )

    section("Hearing back: webhooks, receipts, outcomes")
    public_url: str | None = setting(
        "NOTIFY_PUBLIC_URL",
        None,
        "the URL providers call for `notify webhooks` (e.g. `https://notify.example.com`); "
        "when set, every SMS asks for status callbacks there, and signatures are checked "
        "over it",
        url,
    )
    webhook_host: str = setting("NOTIFY_WEBHOOK_HOST", "0.0.0.0", "where `notify webhooks` binds")
    webhook_port: int = setting(
        "NOTIFY_WEBHOOK_PORT", 8080, "the port `notify webhooks` binds", integer
    )
    receipt_timeout_seconds: float = setting(
        "NOTIFY_RECEIPT_TIMEOUT_SECONDS",
        3600.0,
        "a `sent` SMS with no final status this long after it was sent is looked up",
        number,
    )
    receipt_lookups_per_run: int = setting(
        "NOTIFY_RECEIPT_LOOKUPS_PER_RUN",
        100,
        "at most this many receipt lookups per beat run, which bounds their rate",
        integer,
    )
    outcomes_stream: str = setting(
        "NOTIFY_OUTCOMES_STREAM", "notifications.outcomes", "the outcomes stream"
    )
    outcomes_maxlen: int = setting(
        "NOTIFY_OUTCOMES_MAXLEN",
        1_000_000,
        "the outcomes stream is trimmed to about this many entries (`MAXLEN ~`)",
        integer,
    )
    section("The console")
    console_host: str = setting("NOTIFY_CONSOLE_HOST", "127.0.0.1", "where `notify console` binds")
    console_port: int = setting(
        "NOTIFY_CONSOLE_PORT", 8090, "the port `notify console` binds", integer
    )
    console_users: str = setting(
        "NOTIFY_CONSOLE_USERS",
        "console-users",
        "the console's users file (`name:role:hash` lines, written by "
        "`notify console add-user`); the console refuses to start without users",
    )
    grafana_url: str = setting(
        "NOTIFY_GRAFANA_URL",
        "http://localhost:3000/d/notify-overview",
        "the Grafana dashboard the console's operations page links to",
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        values: dict[str, Any] = {}
        derived: list[tuple[str, Callable[[dict[str, Any]], Any]]] = []
        for f in fields(cls):
            spec: Spec = f.metadata["spec"]
            raw = next((e[name] for name in spec.env if e.get(name)), None)
            if raw is not None:
                values[f.name] = spec.parse(raw, spec.env[0])
            elif spec.derive is not None:
                derived.append((f.name, spec.derive))
            else:
                values[f.name] = f.default
        for name, derive in derived:  # after the others, which they may read
            values[name] = derive(values)
        return cls(**values)

    def __post_init__(self) -> None:
        unknown = {p for p, _ in self.sms_provider_weights or ()} - set(self.sms_providers)
        if unknown:
            raise ValueError(
                f"NOTIFY_SMS_PROVIDER_WEIGHTS names {', '.join(sorted(unknown))}, which "
                f"NOTIFY_SMS_PROVIDERS ({', '.join(self.sms_providers)}) does not"
            )

    @property
    def sms_shares(self) -> tuple[tuple[str, float], ...]:
        """Every provider in use with its configured share (unset: all to the first)."""
        if self.sms_provider_weights is None:
            return tuple((p, 100.0 if i == 0 else 0.0) for i, p in enumerate(self.sms_providers))
        given = dict(self.sms_provider_weights)
        return tuple((p, given.get(p, 0.0)) for p in self.sms_providers)

    @property
    def sms_sender(self) -> str | None:
        """Who sends our SMS, as Twilio rate-limits it: the Messaging Service, else the number."""
        return self.twilio_messaging_service_sid or self.twilio_phone_number


section("Streams and rules")


def specs() -> list[tuple[str, Spec, Any]]:
    """Every setting as (field name, spec, default), in declaration order."""
    return [(f.name, f.metadata["spec"], f.default) for f in fields(Settings)]
