"""One frozen settings object, built from the environment once and passed down."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    return int(_float(env, name, default))


def _rate(env: Mapping[str, str], name: str) -> float | None:
    """A positive rate, or None (unset, empty or 0: no limit)."""
    value = _float(env, name, 0.0)
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return value or None


def _zone(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        message = f"{name} must be an IANA time zone like Europe/London, got {value!r}"
        raise ValueError(message) from None
    return value


SMS_PROVIDERS = ("twilio", "vonage")


def _providers(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """CONTRACT section 13: SMS providers in order of preference, e.g. `twilio,vonage`."""
    names = tuple(p.strip().lower() for p in (env.get(name) or "twilio").split(",") if p.strip())
    unknown = [p for p in names if p not in SMS_PROVIDERS]
    if unknown or not names or len(set(names)) != len(names):
        message = f"{name} must name each of {', '.join(SMS_PROVIDERS)} at most once"
        raise ValueError(f"{message}, got {env.get(name)!r}")
    return names


def _weights(
    env: Mapping[str, str], name: str, providers: tuple[str, ...]
) -> tuple[tuple[str, float], ...]:
    """A share per provider (`twilio=80,vonage=20`); unset: everything to the first."""
    raw = env.get(name) or ""
    if not raw.strip():
        return tuple((p, 100.0 if i == 0 else 0.0) for i, p in enumerate(providers))
    given: dict[str, float] = {}
    for part in raw.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        try:
            share = float(value) if sep else -1.0
        except ValueError:
            share = -1.0
        if key not in providers or share < 0 or key in given:
            raise ValueError(
                f"{name} must be provider=share pairs for NOTIFY_SMS_PROVIDERS "
                f"({', '.join(providers)}), e.g. twilio=80,vonage=20; got {raw!r}"
            )
        given[key] = share
    if not any(given.values()):
        raise ValueError(f"{name} gives every provider a share of 0: {raw!r}")
    return tuple((p, given.get(p, 0.0)) for p in providers)


@dataclass(frozen=True, kw_only=True)
class Settings:
    redis_url: str = "redis://localhost:6379/0"
    stream: str = "events"
    group: str = "notifications"
    dlq_stream: str = "events.dlq"
    rules_path: str = "rules.yaml"
    database_url: str = "postgresql://localhost/notifications"
    broker_url: str = "redis://localhost:6379/0"
    result_backend: str = "redis://localhost:6379/1"
    task_queue: str = "celery"
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_phone_number: str | None = None
    twilio_api_url: str = "https://api.twilio.com"
    # When set, SMS go through this Messaging Service (Twilio picks the number), not From.
    twilio_messaging_service_sid: str | None = None
    # Segments per second per sender (the number, or the Messaging Service); None: no limit.
    sms_segments_per_second: float | None = None
    # The backlog alert fires when a sender's queue would take longer than this to drain.
    sms_backlog_alert_seconds: float = 3600.0
    # Quiet hours: the zone of a recipient with no rule timezone and no zone from the number.
    default_timezone: str = "UTC"
    google_credentials: str = "serviceAccountKey.json"
    fcm_api_url: str = "https://fcm.googleapis.com"
    metrics_port: int = 9464
    worker_metrics_port: int = 9465
    claim_idle_seconds: float = 60.0
    max_event_bytes: int = 65536
    max_deliveries: int = 5
    visibility_timeout_seconds: float = 300.0
    stuck_seconds: float = 300.0
    schedule_interval_seconds: float = 5.0
    batch_size: int = 500
    block_ms: int = 1000
    default_region: str = "US"
    max_send_attempts: int = 5
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 60.0
    provider_timeout_seconds: float = 10.0
    stale_after_seconds: float = 3600.0
    # How long attempts keep asking Twilio whether a send whose answer was lost arrived,
    # while the lookups fail, before the row fails as `outcome_unknown` (never sent blind).
    reconcile_budget_seconds: float = 3600.0
    retention_days: float = 90.0
    rules_poll_seconds: float = 1.0
    task_batch_size: int = 50
    linger_ms: float = 10.0
    # A large batch's rows go to Postgres over this many connections at once (consumer).
    insert_connections: int = 2
    send_concurrency: int = 64
    log_level: str = "INFO"
    consumer_name: str = ""
    # How often lag and pending are read for /metrics, on the consumer and the workers.
    stream_sample_seconds: float = 5.0
    # Hearing back (CONTRACT sections 6 and 7).
    public_url: str | None = None
    webhook_host: str = "0.0.0.0"
    webhook_port: int = 8080
    outcomes_stream: str = "notifications.outcomes"
    outcomes_maxlen: int = 1_000_000
    receipt_timeout_seconds: float = 3600.0
    receipt_lookups_per_run: int = 100
    # A second SMS provider (CONTRACT section 13).
    sms_providers: tuple[str, ...] = ("twilio",)
    sms_provider_weights: tuple[tuple[str, float], ...] = (("twilio", 100.0),)
    vonage_application_id: str | None = None
    vonage_private_key: str | None = None  # a file: the application's private key (PEM)
    vonage_from: str | None = None
    vonage_api_url: str = "https://api.nexmo.com"
    vonage_signature_secret: str | None = None
    # How often beat weighs the providers' health from our own data (tasks/health.py).
    sms_health_interval_seconds: float = 15.0
    # A receipt later than this after the send counts as slow delivery (Notify: 5 minutes).
    sms_slow_delivery_seconds: float = 300.0
    # prometheus-client's own variable: set for prefork workers (see tasks/metrics.py).
    prometheus_multiproc_dir: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        stream = e.get("NOTIFY_STREAM") or "events"
        providers = _providers(e, "NOTIFY_SMS_PROVIDERS")
        return cls(
            redis_url=e.get("REDIS_URL") or cls.redis_url,
            stream=stream,
            group=e.get("NOTIFY_GROUP") or cls.group,
            dlq_stream=e.get("NOTIFY_DLQ_STREAM") or f"{stream}.dlq",
            rules_path=e.get("NOTIFY_RULES") or cls.rules_path,
            database_url=e.get("DATABASE_URL") or cls.database_url,
            broker_url=e.get("CELERY_BROKER_URL") or cls.broker_url,
            result_backend=e.get("CELERY_RESULT_BACKEND") or cls.result_backend,
            task_queue=e.get("NOTIFY_TASK_QUEUE") or cls.task_queue,
            twilio_account_sid=e.get("TWILIO_ACCOUNT_SID") or None,
            twilio_auth_token=e.get("TWILIO_AUTH_TOKEN") or None,
            twilio_phone_number=e.get("TWILIO_PHONE_NUMBER") or None,
            twilio_api_url=(e.get("TWILIO_API_URL") or cls.twilio_api_url).rstrip("/"),
            twilio_messaging_service_sid=e.get("TWILIO_MESSAGING_SERVICE_SID") or None,
            sms_segments_per_second=_rate(e, "NOTIFY_SMS_SEGMENTS_PER_SECOND"),
            sms_backlog_alert_seconds=_float(
                e, "NOTIFY_SMS_BACKLOG_ALERT_SECONDS", cls.sms_backlog_alert_seconds
            ),
            default_timezone=_zone(e, "NOTIFY_DEFAULT_TIMEZONE", cls.default_timezone),
            google_credentials=e.get("GOOGLE_APPLICATION_CREDENTIALS") or cls.google_credentials,
            fcm_api_url=(e.get("FCM_API_URL") or cls.fcm_api_url).rstrip("/"),
            metrics_port=_int(e, "NOTIFY_METRICS_PORT", cls.metrics_port),
            worker_metrics_port=_int(e, "NOTIFY_WORKER_METRICS_PORT", cls.worker_metrics_port),
            claim_idle_seconds=_float(e, "NOTIFY_CLAIM_IDLE_SECONDS", cls.claim_idle_seconds),
            max_event_bytes=_int(e, "NOTIFY_MAX_EVENT_BYTES", cls.max_event_bytes),
            max_deliveries=_int(e, "NOTIFY_MAX_DELIVERIES", cls.max_deliveries),
            visibility_timeout_seconds=_float(
                e, "NOTIFY_VISIBILITY_TIMEOUT_SECONDS", cls.visibility_timeout_seconds
            ),
            stuck_seconds=_float(e, "NOTIFY_STUCK_SECONDS", cls.stuck_seconds),
            schedule_interval_seconds=_float(
                e, "NOTIFY_SCHEDULE_INTERVAL_SECONDS", cls.schedule_interval_seconds
            ),
            batch_size=_int(e, "NOTIFY_BATCH_SIZE", cls.batch_size),
            block_ms=_int(e, "NOTIFY_BLOCK_MS", cls.block_ms),
            default_region=e.get("NOTIFY_DEFAULT_REGION") or cls.default_region,
            max_send_attempts=_int(e, "NOTIFY_MAX_SEND_ATTEMPTS", cls.max_send_attempts),
            retry_base_seconds=_float(e, "NOTIFY_RETRY_BASE_SECONDS", cls.retry_base_seconds),
            retry_max_seconds=_float(e, "NOTIFY_RETRY_MAX_SECONDS", cls.retry_max_seconds),
            provider_timeout_seconds=_float(
                e, "NOTIFY_PROVIDER_TIMEOUT_SECONDS", cls.provider_timeout_seconds
            ),
            stale_after_seconds=_float(e, "NOTIFY_STALE_AFTER_SECONDS", cls.stale_after_seconds),
            reconcile_budget_seconds=_float(
                e, "NOTIFY_RECONCILE_BUDGET_SECONDS", cls.reconcile_budget_seconds
            ),
            retention_days=_float(e, "NOTIFY_RETENTION_DAYS", cls.retention_days),
            rules_poll_seconds=_float(e, "NOTIFY_RULES_POLL_SECONDS", cls.rules_poll_seconds),
            task_batch_size=_int(e, "NOTIFY_TASK_BATCH_SIZE", cls.task_batch_size),
            linger_ms=_float(e, "NOTIFY_BATCH_LINGER_MS", cls.linger_ms),
            insert_connections=max(1, _int(e, "NOTIFY_INSERT_CONNECTIONS", cls.insert_connections)),
            send_concurrency=_int(e, "NOTIFY_SEND_CONCURRENCY", cls.send_concurrency),
            log_level=(e.get("NOTIFY_LOG_LEVEL") or e.get("LOG_LEVEL") or cls.log_level).upper(),
            # Stable when set (a pod name), so a restarted consumer re-reads its own pending
            # entries; otherwise unique per process.
            consumer_name=e.get("NOTIFY_CONSUMER_NAME")
            or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}",
            prometheus_multiproc_dir=e.get("PROMETHEUS_MULTIPROC_DIR") or None,
            stream_sample_seconds=_sample_seconds(e),
            # The URL Twilio calls (behind any proxy); signatures are computed over it.
            public_url=(e.get("NOTIFY_PUBLIC_URL") or "").rstrip("/") or None,
            webhook_host=e.get("NOTIFY_WEBHOOK_HOST") or cls.webhook_host,
            webhook_port=_int(e, "NOTIFY_WEBHOOK_PORT", cls.webhook_port),
            outcomes_stream=e.get("NOTIFY_OUTCOMES_STREAM") or cls.outcomes_stream,
            outcomes_maxlen=_int(e, "NOTIFY_OUTCOMES_MAXLEN", cls.outcomes_maxlen),
            receipt_timeout_seconds=_float(
                e, "NOTIFY_RECEIPT_TIMEOUT_SECONDS", cls.receipt_timeout_seconds
            ),
            receipt_lookups_per_run=_int(
                e, "NOTIFY_RECEIPT_LOOKUPS_PER_RUN", cls.receipt_lookups_per_run
            ),
            sms_providers=providers,
            sms_provider_weights=_weights(e, "NOTIFY_SMS_PROVIDER_WEIGHTS", providers),
            vonage_application_id=e.get("VONAGE_APPLICATION_ID") or None,
            vonage_private_key=e.get("VONAGE_PRIVATE_KEY") or None,
            vonage_from=e.get("VONAGE_FROM") or None,
            vonage_api_url=(e.get("VONAGE_API_URL") or cls.vonage_api_url).rstrip("/"),
            vonage_signature_secret=e.get("VONAGE_SIGNATURE_SECRET") or None,
            sms_health_interval_seconds=_float(
                e, "NOTIFY_SMS_HEALTH_INTERVAL_SECONDS", cls.sms_health_interval_seconds
            ),
            sms_slow_delivery_seconds=_float(
                e, "NOTIFY_SMS_SLOW_DELIVERY_SECONDS", cls.sms_slow_delivery_seconds
            ),
        )

    @property
    def sms_sender(self) -> str | None:
        """Who sends our SMS, as Twilio rate-limits it: the Messaging Service, else the number."""
        return self.twilio_messaging_service_sid or self.twilio_phone_number


def _sample_seconds(env: Mapping[str, str]) -> float:
    """CONTRACT section 5: lag is refreshed at least every 15 s."""
    value = _float(env, "NOTIFY_STREAM_SAMPLE_SECONDS", Settings.stream_sample_seconds)
    if not 0 < value <= 15:
        raise ValueError(f"NOTIFY_STREAM_SAMPLE_SECONDS must be in (0, 15], got {value}")
    return value
