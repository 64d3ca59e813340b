"""docs/configuration.md is generated from the settings' declarations and kept current."""

from __future__ import annotations

from notify import settings_doc
from notify.settings import Settings, specs


def test_the_configuration_document_is_current() -> None:
    assert settings_doc.PATH.read_text() == settings_doc.markdown(), "run `make docs`"


def test_every_setting_is_declared_once_with_a_variable_and_a_doc() -> None:
    names = [name for _, spec, _ in specs() for name in spec.env]
    assert len(names) == len(set(names))
    assert all(spec.doc and spec.env for _, spec, _ in specs())


def test_an_empty_variable_is_unset_and_the_first_name_set_wins() -> None:
    settings = Settings.from_env({"NOTIFY_STREAM": "", "LOG_LEVEL": "debug"})
    assert settings.stream == "events"
    assert settings.log_level == "DEBUG"
    both = Settings.from_env({"NOTIFY_LOG_LEVEL": "warning", "LOG_LEVEL": "debug"})
    assert both.log_level == "WARNING"


def test_a_derived_default_follows_the_setting_it_derives_from() -> None:
    assert Settings.from_env({"NOTIFY_STREAM": "orders"}).dlq_stream == "orders.dlq"
    assert Settings.from_env({"NOTIFY_DLQ_STREAM": "dead"}).dlq_stream == "dead"
    assert Settings.from_env({}).consumer_name != Settings.from_env({}).consumer_name
