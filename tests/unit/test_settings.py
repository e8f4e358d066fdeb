"""esr.settings: every ESR_* variable read once, flags over variables over defaults, bad values named."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import esr
from esr.bus.kafka import KafkaSettings
from esr.core.run_limits import RunLimits
from esr.settings import Settings, SettingsError

HOME = Path("/srv/esr-home")


def test_defaults_when_nothing_is_set() -> None:
    s = Settings.from_env({})
    assert s.home == Path.home() / ".esr" and s.registry_file == Path.home() / ".esr" / "targets.json"
    assert (s.kafka, s.kafka_prefix, s.kafka_partitions, s.http_client) == (None, "esr.", 4, "pooled")
    assert s.kafka_config is None
    assert (s.token, s.observer_token, s.public_url, s.assets, s.metrics_port) == (None, None, None, None, None)
    assert (s.url, s.time_warp, s.target, s.grafana_url, s.grafana_token) == (None, None, None, None, None)
    assert s.limits == RunLimits()


def test_every_variable_is_read() -> None:
    env = {"ESR_HOME": str(HOME), "ESR_TARGETS": "/etc/esr/targets.json", "ESR_TARGET": "staging",
           "ESR_HTTP_CLIENT": "aiohttp", "ESR_KAFKA": "127.0.0.1:9092", "ESR_KAFKA_PREFIX": "t1.",
           "ESR_KAFKA_PARTITIONS": "12", "ESR_KAFKA_CONFIG": "/etc/esr/kafka.properties",
           "ESR_TOKEN": "a" * 20, "ESR_OBSERVER_TOKEN": "b" * 20,
           "ESR_PUBLIC_URL": "https://esr.agency.example", "ESR_ASSETS": "/opt/uplot", "ESR_METRICS_PORT": "9464",
           "ESR_BOT_BACKLOG": "500", "ESR_MAX_RATE": "2e3", "ESR_MAX_JOURNEYS": "10", "ESR_URL": "http://127.0.0.1:9800",
           "ESR_TIME_WARP": "1440", "ESR_GRAFANA_URL": "http://127.0.0.1:3000", "ESR_GRAFANA_TOKEN": "glsa_x"}
    s = Settings.from_env(env)
    assert s == Settings(
        home=HOME, targets_file=Path("/etc/esr/targets.json"), target="staging", http_client="aiohttp",
        kafka="127.0.0.1:9092", kafka_prefix="t1.", kafka_partitions=12,
        kafka_config=Path("/etc/esr/kafka.properties"), token="a" * 20, observer_token="b" * 20,
        public_url="https://esr.agency.example", assets=Path("/opt/uplot"), metrics_port=9464, bot_backlog=500,
        limits=RunLimits(max_rate=2000.0, max_journeys=10), url="http://127.0.0.1:9800", time_warp=1440.0,
        grafana_url="http://127.0.0.1:3000", grafana_token="glsa_x")
    assert s.registry_file == Path("/etc/esr/targets.json")


def test_flags_win_over_variables_and_a_flag_not_given_does_not() -> None:
    env = {"ESR_KAFKA": "127.0.0.1:9092", "ESR_HTTP_CLIENT": "aiohttp", "ESR_HOME": str(HOME)}
    s = Settings.from_env(env, kafka="127.0.0.1:19092", http_client=None, public_url=None)
    assert (s.kafka, s.http_client, s.public_url, s.home) == ("127.0.0.1:19092", "aiohttp", None, HOME)
    with pytest.raises(TypeError, match="unknown settings: colour"):
        Settings.from_env({}, colour="red")


def test_blank_variables_are_unset() -> None:
    s = Settings.from_env({"ESR_KAFKA": "  ", "ESR_TIME_WARP": "", "ESR_HOME": ""})
    assert (s.kafka, s.time_warp, s.home) == (None, None, Path.home() / ".esr")


@pytest.mark.parametrize(("env", "message"), [
    ({"ESR_KAFKA_PARTITIONS": "0"}, "ESR_KAFKA_PARTITIONS='0': expected a whole number of at least 1"),
    ({"ESR_KAFKA_PARTITIONS": "four"}, "ESR_KAFKA_PARTITIONS='four': expected a whole number of at least 1"),
    ({"ESR_BOT_BACKLOG": "0"}, "ESR_BOT_BACKLOG='0': expected a whole number of at least 1"),
    ({"ESR_METRICS_PORT": "0"}, "ESR_METRICS_PORT must be a port number from 1 to 65535, not '0'"),
    ({"ESR_METRICS_PORT": "70000"}, "ESR_METRICS_PORT must be a port number from 1 to 65535, not '70000'"),
    ({"ESR_METRICS_PORT": "nine"}, "ESR_METRICS_PORT must be a port number from 1 to 65535, not 'nine'"),
    ({"ESR_TIME_WARP": "fast"}, "ESR_TIME_WARP='fast' is not a number; set it to a warp such as 1440, or unset it"),
    ({"ESR_TIME_WARP": "-5"}, "ESR_TIME_WARP='-5': a warp is a positive number, such as 1440"),
    ({"ESR_TIME_WARP": "inf"}, "ESR_TIME_WARP='inf': a warp is a positive number, such as 1440"),
    ({"ESR_TIME_WARP": "nan"}, "ESR_TIME_WARP='nan': a warp is a positive number, such as 1440"),
    ({"ESR_MAX_RATE": "lots"}, "ESR_MAX_RATE='lots' is not a number"),
    ({"ESR_KAFKA_REPLICATION": "0"}, "ESR_KAFKA_REPLICATION='0': expected a whole number of at least 1"),
    ({"ESR_KAFKA_MIN_ISR": "two"}, "ESR_KAFKA_MIN_ISR='two': expected a whole number of at least 1"),
    ({"ESR_KAFKA_REPLICATION": "3", "ESR_KAFKA_MIN_ISR": "4"},
     "ESR_KAFKA_MIN_ISR=4 is more than ESR_KAFKA_REPLICATION=3: no write could ever be acknowledged; set "
     "ESR_KAFKA_MIN_ISR to at most the replication factor (2 with 3 replicas)"),
    ({"ESR_KAFKA_MIN_ISR": "2"},
     "ESR_KAFKA_MIN_ISR=2 is more than ESR_KAFKA_REPLICATION=1: no write could ever be acknowledged; set "
     "ESR_KAFKA_MIN_ISR to at most the replication factor (2 with 3 replicas)"),
])
def test_a_bad_value_names_its_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert str(caught.value) == message
    assert isinstance(caught.value, esr.EsrError)


def test_replication_defaults_to_one_broker_and_reaches_the_kafka_settings() -> None:
    s = Settings.from_env({})
    assert (s.kafka_replication, s.kafka_min_isr) == (1, 1)
    s = Settings.from_env({"ESR_KAFKA": "127.0.0.1:1,127.0.0.1:3", "ESR_KAFKA_REPLICATION": "3",
                           "ESR_KAFKA_MIN_ISR": "2"})
    kafka = KafkaSettings.from_settings(s)
    assert (kafka.bootstrap, kafka.replication, kafka.min_isr) == ("127.0.0.1:1,127.0.0.1:3", 3, 2)
    assert kafka.topic_config == {"min.insync.replicas": "2", "max.message.bytes": str(16 * 1024 * 1024)}


def test_settings_are_frozen() -> None:
    s = Settings.from_env({})
    with pytest.raises(AttributeError):
        s.kafka = "x"  # type: ignore[misc]
    assert s.replace(kafka="127.0.0.1:9092").kafka == "127.0.0.1:9092" and s.kafka is None


def _reads_environment(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "os" and any(
                a.name in ("environ", "getenv") for a in node.names):
            return True
    return False


def test_only_esr_settings_reads_the_environment() -> None:
    package = Path(esr.__file__).parent
    readers = sorted(str(p.relative_to(package)) for p in package.rglob("*.py") if _reads_environment(p))
    assert readers == ["settings.py"]
