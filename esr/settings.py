"""`Settings`: everything ESR takes from its environment, read in one place and passed in.

A command-line flag wins over its `ESR_*` variable, which wins over the default. The edges
(the `esr` command, the Python client, `esr.run_scenario`, `esr.Run` without a `home`) build one
`Settings` and hand it, or the part of it that is needed, to the code below them; no other
module reads the environment.

    ESR_HOME                 run logs, tokens, the target registry   (~/.esr)
    ESR_TARGETS              the target registry file                 ($ESR_HOME/targets.json)
    ESR_TARGET               the target of `esr run` without --target
    ESR_HTTP_CLIENT          pooled or aiohttp                         (pooled)
    ESR_KAFKA                a broker: play runs on the Kafka runtime
    ESR_KAFKA_PREFIX         topic and group prefix                    (esr.)
    ESR_KAFKA_PARTITIONS     partitions of new topics = bot shards     (4)
    ESR_KAFKA_REPLICATION    replication factor of new topics          (1; 3 on a cluster of 3 or more)
    ESR_KAFKA_MIN_ISR        their min.insync.replicas                 (1; 2 with replication 3)
    ESR_KAFKA_CONFIG         a file of Kafka client properties: security.protocol, SASL, TLS
                             (esr.bus.client_config; read when a Kafka client is made)
    ESR_TOKEN                the server's launch token                 ($ESR_HOME/token)
    ESR_OBSERVER_TOKEN       the server's read-only token              ($ESR_HOME/observer_token)
    ESR_PUBLIC_URL           the URL the server's links start with
    ESR_ASSETS               a folder with uPlot's files               (deploy/dashboard/node_modules)
    ESR_METRICS_PORT         the Kafka metrics worker's /metrics port  (none)
    ESR_BOT_BACKLOG          a replay shard's requests a bot worker holds unanswered before it
                             pauses reading the shard's parts          (10000)
    ESR_MAX_JOURNEYS, ESR_MAX_RATE, ESR_MAX_REAL_HOURS, ESR_MAX_REQUESTS_PER_JOURNEY
                             the server's limits on each scenario (esr.core.run_limits)
    ESR_URL                  the server the Python client talks to    (http://localhost:9700)
    ESR_TIME_WARP            the client plays scenarios at this warp
    ESR_GRAFANA_URL, ESR_GRAFANA_TOKEN   where `esr grafana push` goes
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esr.core.errors import EsrError
from esr.core.run_limits import RunLimits

__all__ = ["Settings", "SettingsError"]


class SettingsError(EsrError):
    """An `ESR_*` variable (or the flag that stands for it) has a value ESR cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path
    targets_file: Path | None = None  # None: home / targets.json
    target: str | None = None
    http_client: str = "pooled"
    kafka: str | None = None
    kafka_prefix: str = "esr."
    kafka_partitions: int = 4
    kafka_replication: int = 1
    kafka_min_isr: int = 1
    kafka_config: Path | None = None
    token: str | None = None
    observer_token: str | None = None
    public_url: str | None = None
    assets: Path | None = None
    metrics_port: int | None = None
    bot_backlog: int = 10_000
    limits: RunLimits = field(default_factory=RunLimits)
    url: str | None = None
    time_warp: float | None = None
    grafana_url: str | None = None
    grafana_token: str | None = None

    @property
    def registry_file(self) -> Path:
        return self.targets_file or self.home / "targets.json"

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **flags: Any) -> Settings:
        """Settings from `environ` (a mapping: pass `os.environ` at the edge), then `flags`
        over them (a flag given as None is a flag not given)."""

        def text(name: str) -> str | None:
            value = environ.get(name, "").strip()
            return value or None

        values: dict[str, Any] = {
            "home": Path(text("ESR_HOME") or Path.home() / ".esr"),
            "targets_file": _path(text("ESR_TARGETS")),
            "target": text("ESR_TARGET"),
            "http_client": text("ESR_HTTP_CLIENT") or "pooled",
            "kafka": text("ESR_KAFKA"),
            "kafka_prefix": environ.get("ESR_KAFKA_PREFIX", "esr."),
            "kafka_partitions": _count("ESR_KAFKA_PARTITIONS", text("ESR_KAFKA_PARTITIONS"), 4),
            "kafka_replication": _count("ESR_KAFKA_REPLICATION", text("ESR_KAFKA_REPLICATION"), 1),
            "kafka_min_isr": _count("ESR_KAFKA_MIN_ISR", text("ESR_KAFKA_MIN_ISR"), 1),
            "kafka_config": _path(text("ESR_KAFKA_CONFIG")),
            "token": text("ESR_TOKEN"),
            "observer_token": text("ESR_OBSERVER_TOKEN"),
            "public_url": text("ESR_PUBLIC_URL"),
            "assets": _path(text("ESR_ASSETS")),
            "metrics_port": _port("ESR_METRICS_PORT", text("ESR_METRICS_PORT")),
            "bot_backlog": _count("ESR_BOT_BACKLOG", text("ESR_BOT_BACKLOG"), 10_000),
            "limits": _limits(environ),
            "url": text("ESR_URL"),
            "time_warp": _warp(text("ESR_TIME_WARP")),
            "grafana_url": text("ESR_GRAFANA_URL"),
            "grafana_token": text("ESR_GRAFANA_TOKEN"),
        }
        unknown = set(flags) - set(values)
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        values.update({name: value for name, value in flags.items() if value is not None})
        if values["kafka_min_isr"] > values["kafka_replication"]:
            raise SettingsError(f"ESR_KAFKA_MIN_ISR={values['kafka_min_isr']} is more than "
                                f"ESR_KAFKA_REPLICATION={values['kafka_replication']}: no write could ever be "
                                "acknowledged; set ESR_KAFKA_MIN_ISR to at most the replication factor "
                                "(2 with 3 replicas)")
        return cls(**values)

    @classmethod
    def current(cls, **flags: Any) -> Settings:
        """The process's settings: its environment, then `flags`. The one read of `os.environ`."""
        return cls.from_env(os.environ, **flags)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _count(name: str, value: str | None, default: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or int(value) < 1:
        raise SettingsError(f"{name}={value!r}: expected a whole number of at least 1")
    return int(value)


def _port(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise SettingsError(f"{name} must be a port number from 1 to 65535, not {value!r}")
    return int(value)


def _warp(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        warp = float(value)
    except ValueError:
        raise SettingsError(f"ESR_TIME_WARP={value!r} is not a number; set it to a warp such as 1440, "
                            "or unset it") from None
    if not warp > 0 or warp == float("inf"):
        raise SettingsError(f"ESR_TIME_WARP={value!r}: a warp is a positive number, such as 1440")
    return warp


def _limits(environ: Mapping[str, str]) -> RunLimits:
    try:
        return RunLimits.from_environment(environ)
    except EsrError as exc:
        raise SettingsError(str(exc)) from None
