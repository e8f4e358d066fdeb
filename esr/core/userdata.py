"""Seeded per-user data for journeys: names, ids, amounts, dates.

A journey's `data` maps a name to a generator: a Faker provider name ("ssn", "first_name",
"date_of_birth"), or `{"int": [lo, hi]}`, `{"float": [lo, hi]}`, `{"choice": [...]}`,
`{"uuid": true}`. The same seed and user index give the same values on every run.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from functools import cache
from typing import Any

from faker import Faker

__all__ = ["DataSpec", "check_data_spec", "generate_user_data"]

DataSpec = str | dict[str, Any]


@cache
def _faker() -> Faker:
    return Faker("en_US")


def check_data_spec(spec: DataSpec) -> None:
    """Raise ValueError saying what is expected if `spec` is not a generator we know."""
    if isinstance(spec, str):
        try:
            provider = getattr(_faker(), spec, None)
        except (TypeError, AttributeError):  # e.g. Faker's class-level attributes
            provider = None
        if spec.startswith("_") or spec.startswith("seed") or not callable(provider):
            raise ValueError(
                f"unknown data generator {spec!r}: use a Faker provider name such as 'ssn', "
                "'first_name', 'email', 'date_of_birth', or {'int': [lo, hi]}, {'float': [lo, hi]},"
                " {'choice': [...]}, {'uuid': true}"
            )
        return
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ValueError("a data generator is a provider name or a one-key object such as {'int': [1, 9]}")
    (kind, arg), = spec.items()
    if kind in ("int", "float"):
        if not (isinstance(arg, list) and len(arg) == 2 and all(isinstance(x, (int, float)) for x in arg)
                and arg[0] <= arg[1]):
            raise ValueError(f"{{'{kind}': [lo, hi]}} needs two numbers with lo <= hi, got {arg!r}")
    elif kind == "choice":
        if not (isinstance(arg, list) and arg):
            raise ValueError("{'choice': [...]} needs a non-empty list")
    elif kind != "uuid":
        raise ValueError(f"unknown data generator kind {kind!r}: use int, float, choice or uuid")


def _plain(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def generate_user_data(specs: Mapping[str, DataSpec], rng: random.Random) -> dict[str, Any]:
    """Values for one user, drawn from `rng` (seeded per user)."""
    values: dict[str, Any] = {}
    fake = None
    for name, spec in specs.items():
        if isinstance(spec, str):
            if fake is None:
                fake = _faker()
                fake.seed_instance(rng.getrandbits(64))
            values[name] = _plain(getattr(fake, spec)())
            continue
        (kind, arg), = spec.items()
        if kind == "int":
            values[name] = rng.randint(int(arg[0]), int(arg[1]))
        elif kind == "float":
            values[name] = round(rng.uniform(arg[0], arg[1]), 2)
        elif kind == "choice":
            values[name] = arg[rng.randrange(len(arg))]
        else:
            values[name] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return values
