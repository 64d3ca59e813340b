"""The deployable stack, checked without Docker: compose services, alert rules, dashboard."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.launcher import beat_args, console_args, consumer_args, webhooks_args, worker_args

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
LONG_RUNNING = {
    "redis",
    "postgres",
    "consumer",
    "worker",
    "beat",
    "webhooks",
    "console",
    "flower",
    "prometheus",
    "grafana",
}
ALERTS = {
    "NotifyStreamLagHigh", "NotifyStreamLagUnknown", "NotifyPendingStuck",
    "NotifyDeadLettersIncreasing", "NotifyChannelFailureRatioHigh", "NotifyProviderLatencyHigh",
    "NotifyConsumerDown", "NotifyWorkerDown", "NotifyStreamReset", "NotifySmsBacklogSlowToDrain",
    "NotifyDeliveredRatioFalling", "NotifyReceiptsStopped", "NotifyOutboxBacklogGrowing",
    "NotifyWebhooksDown", "NotifySmsCountryPaused", "NotifyPartitionMissing",
    "NotifySmsOneProviderCarriesAll",
}  # fmt: skip


def test_compose_runs_the_launchers_command_lines(services: dict[str, Any]) -> None:
    """Demo, tests and bench start processes through harness/launcher.py; production must
    run the same flags, or what we test is not what we ship."""
    assert services["consumer"]["command"] == consumer_args()
    assert services["worker"]["command"] == worker_args(concurrency=32)
    assert services["beat"]["command"] == beat_args("/tmp/celerybeat-schedule")
    assert services["webhooks"]["command"] == webhooks_args()
    assert services["console"]["command"] == console_args()


def load(name: str) -> Any:
    return yaml.safe_load((DEPLOY / name).read_text())


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = load("docker-compose.yml")
    assert "version" not in compose  # the compose spec has none
    return dict(compose["services"])


def command(service: dict[str, Any]) -> str:
    cmd = service["command"]
    return " ".join(cmd) if isinstance(cmd, list) else str(cmd)


def test_the_stack_has_every_service_with_a_healthcheck(services: dict[str, Any]) -> None:
    assert LONG_RUNNING | {"migrate"} <= set(services)
    for name in LONG_RUNNING:
        assert "healthcheck" in services[name], name


def test_processes_run_the_documented_commands(services: dict[str, Any]) -> None:
    assert command(services["migrate"]) == "notify migrate"
    assert command(services["consumer"]) == "notify consume"
    assert command(services["worker"]).startswith("celery -A tasks worker")
    assert command(services["beat"]).startswith("celery -A tasks beat")
    assert command(services["flower"]).startswith("celery -A tasks flower")
    for name in ("migrate", "consumer", "worker", "beat", "webhooks", "flower"):
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert services["redis"]["image"].startswith("redis:7")
    assert services["postgres"]["image"].startswith("postgres:")
    assert (DEPLOY / "Dockerfile").exists()


def test_redis_keeps_the_stream_across_restarts(services: dict[str, Any]) -> None:
    """Without AOF, events not yet consumed are lost when Redis restarts (README)."""
    args = services["redis"]["command"]
    options = dict(zip(args[1::2], args[2::2], strict=True))
    assert args[0] == "redis-server" and options["--appendonly"] == "yes"
    assert options["--appendfsync"] in ("everysec", "always")
    assert any(v.split(":")[1] == "/data" for v in services["redis"]["volumes"])


def test_the_image_holds_every_package_the_project_installs() -> None:
    """A package missing from the image installs fine and fails at the first import."""
    pyproject = (DEPLOY.parent / "pyproject.toml").read_text()
    include = pyproject.split("[tool.setuptools.packages.find]", 1)[1].split("]", 1)[0]
    packages = {name.rstrip("*") for name in include.split('"')[1::2]}
    copied = {
        line.split()[1]
        for line in (DEPLOY / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
    }
    assert packages <= copied, packages - copied


def test_app_processes_wait_for_the_migration(services: dict[str, Any]) -> None:
    for name in ("consumer", "worker", "beat", "webhooks"):
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}, name
    assert services["beat"]["deploy"]["replicas"] == 1


def test_configuration_follows_the_contract(services: dict[str, Any]) -> None:
    env = services["consumer"]["environment"]
    for name in (
        "REDIS_URL",
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "CELERY_RESULT_BACKEND",
        "NOTIFY_RULES",
        "NOTIFY_METRICS_PORT",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ):
        assert name in env, name
    assert services["worker"]["environment"]["NOTIFY_WORKER_METRICS_PORT"] == "9465"
    # Workers name the callback URL and the receiver checks signatures over the same one.
    for name in ("worker", "webhooks"):
        assert services[name]["environment"]["NOTIFY_PUBLIC_URL"], name
    assert services["webhooks"]["environment"]["NOTIFY_WEBHOOK_PORT"] == "8080"


def test_every_mounted_file_exists(services: dict[str, Any]) -> None:
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), source
    prometheus = services["prometheus"]["volumes"]
    assert any(v.startswith("./prometheus/alerts.yml:") for v in prometheus)


def test_prometheus_scrapes_both_jobs_and_loads_the_rules() -> None:
    config = load("prometheus/prometheus.yml")
    jobs = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    assert jobs == {
        "notify-consumer": ["consumer:9464"],
        "notify-worker": ["worker:9465"],
        "notify-webhooks": ["webhooks:8080"],
    }
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]


def _slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces to -."""
    kept = "".join(c for c in heading.strip().lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def test_every_alert_exists_has_a_runbook_and_is_unit_tested() -> None:
    rules = [r for g in load("prometheus/alerts.yml")["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} == ALERTS
    for rule in rules:
        path, anchor = rule["annotations"]["runbook"].split("#", 1)
        assert path == "docs/operations.md", rule["alert"]
        runbook = (DEPLOY.parent / path).read_text()
        slugs = {_slug(line.lstrip("#")) for line in runbook.splitlines() if line.startswith("#")}
        assert anchor in slugs, (rule["alert"], anchor)
    tests = load("prometheus/alerts_test.yml")["tests"]
    tested = {case["alertname"] for t in tests for case in t["alert_rule_test"]}
    fired = {
        case["alertname"] for t in tests for case in t["alert_rule_test"] if case["exp_alerts"]
    }
    assert tested == ALERTS and fired == ALERTS


def test_the_dashboard_shows_lag_throughput_failures_and_latency() -> None:
    dashboard = json.loads((DEPLOY / "grafana/dashboards/notifications.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    for metric in (
        "notify_stream_lag",
        "notify_events_total",
        "notify_notifications_total",
        "notify_send_seconds_bucket",
        "notify_dead_letters_total",
        "notify_notifications_inserted_total",  # consumer-side failures in the ratio
        "notify_receipts_total",
        "notify_delivery_seconds_bucket",
        "notify_outbox_backlog",
        "notify_notifications_skipped_total",
        "notify_suppressions_total",
        "notify_sms_price_total",  # the spend row
        "notify_sms_segments_total",
        "notify_sms_country_paused_total",
    ):
        assert metric in exprs, metric
    provisioning = load("grafana/provisioning/datasources/prometheus.yml")
    assert provisioning["datasources"][0]["uid"] == "prometheus"


def test_check_alerts_never_kills_a_prometheus_it_did_not_start() -> None:
    """Integration tests run their own prometheus, and so may a developer: the script may
    stop only the packaged service its own install started, never match by name."""
    script = (DEPLOY / "check-alerts.sh").read_text()
    code = [line.split("#", 1)[0] for line in script.splitlines()]
    for line in code:
        for word in ("pkill", "killall", "kill "):
            assert word not in line, line


@pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool not installed (`make alerts` installs it and runs these tests)",
)
def test_promtool_unit_tests_pass() -> None:
    result = subprocess.run(
        ["promtool", "test", "rules", str(DEPLOY / "prometheus/alerts_test.yml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rabbitmq_variant_moves_only_the_celery_broker(services: dict[str, Any]) -> None:
    """`-f docker-compose.yml -f docker-compose.rabbitmq.yml`: compose merges each service's
    environment and depends_on maps, so every process that talks to Celery gets the AMQP
    broker and waits for RabbitMQ, and the stream stays on Redis."""
    variant = load("docker-compose.rabbitmq.yml")
    assert variant["name"] == load("docker-compose.yml")["name"]
    extra = variant["services"]
    rabbit = extra.pop("rabbitmq")
    assert rabbit["image"].startswith("rabbitmq:") and "healthcheck" in rabbit
    vhost = rabbit["environment"]["RABBITMQ_DEFAULT_VHOST"]
    user = rabbit["environment"]["RABBITMQ_DEFAULT_USER"]
    assert set(extra) == {"consumer", "worker", "beat", "webhooks", "flower"} <= set(services)
    for name, service in extra.items():
        env = service["environment"]
        assert set(env) == {"CELERY_BROKER_URL"}, name
        assert env["CELERY_BROKER_URL"].startswith(f"amqp://{user}:")
        assert env["CELERY_BROKER_URL"].endswith(f"@rabbitmq:5672/{vhost}")
        assert "command" not in service, name  # the base's command lines, as tested above
        if name != "webhooks":  # it publishes nothing to Celery
            assert service["depends_on"] == {"rabbitmq": {"condition": "service_healthy"}}
    assert "rabbitmq-data" in variant["volumes"]
