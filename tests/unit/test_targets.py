"""The target registry: loopback and registered targets only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from esr.core.errors import TargetRefused
from esr.core.loopback import is_loopback_url
from esr.core.targets import TargetRegistry


@pytest.mark.parametrize(("url", "loopback"), [
    ("http://127.0.0.1:8080", True), ("http://127.9.9.9", True), ("http://[::1]:80", True),
    ("http://localhost:1", True), ("http://10.0.0.1", False), ("http://192.0.2.1", False),
    ("http://example.org", False),
])
def test_loopback(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback


def test_registered_names_and_refusals(tmp_path: Path) -> None:
    path = tmp_path / "targets.json"
    path.write_text(json.dumps({"targets": {"staging": {"url": "http://127.0.0.1:8080/"}}}))
    registry = TargetRegistry.load(path)
    assert registry.resolve("staging").url == "http://127.0.0.1:8080"
    assert registry.resolve("http://127.0.0.1:8080").name == "staging"
    assert registry.resolve("http://127.0.0.1:9000").url == "http://127.0.0.1:9000"
    with pytest.raises(TargetRefused, match=f"not a loopback address and not in the target registry.*{path}"):
        registry.resolve("http://192.0.2.1")
    with pytest.raises(TargetRefused, match=r"did you mean http://127.0.0.1:9\?"):
        registry.resolve("127.0.0.1:9")
    with pytest.raises(TargetRefused, match="must look like http://"):
        registry.resolve("ftp://127.0.0.1")


def test_a_registry_may_refuse_unregistered_loopback(tmp_path: Path) -> None:
    path = tmp_path / "targets.json"
    path.write_text(json.dumps({"loopback": False, "targets": {"sut": {"url": "http://127.0.0.1:8080"}}}))
    registry = TargetRegistry.load(path)
    assert registry.resolve("sut").url == "http://127.0.0.1:8080"
    with pytest.raises(TargetRefused, match="allows registered targets only"):
        registry.resolve("http://127.0.0.1:9000")
    path.write_text(json.dumps({"loopback": "no", "targets": {}}))
    with pytest.raises(TargetRefused, match='"loopback" must be true or false'):
        TargetRegistry.load(path)
