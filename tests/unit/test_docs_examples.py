"""Every scenario example in the README and docs is valid as written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from esr.core.journey_spec import JourneySpec
from esr.core.scenario import Scenario
from esr.core.targets import TargetRegistry

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(language: str) -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for i, match in enumerate(re.finditer(rf"```{language}\n(.*?)```", doc.read_text(), re.S)):
            found.append((f"{doc.name}#{i}", match.group(1)))
    return found


@pytest.mark.parametrize(("where", "text"), blocks("json"), ids=[w for w, _ in blocks("json")])
def test_json_examples(where: str, text: str, tmp_path: Path) -> None:
    data = json.loads(text)
    if "load_profile" in data:
        Scenario.from_dict(data)
    elif "targets" in data:
        path = tmp_path / "targets.json"
        path.write_text(text)
        assert TargetRegistry.load(path).targets
    else:
        JourneySpec.model_validate(data)


@pytest.mark.parametrize(("where", "text"), blocks("python"), ids=[w for w, _ in blocks("python")])
def test_python_examples(where: str, text: str) -> None:
    # client examples stop before they talk to a server: only the scenario is checked here
    text = text.split("run_id = launch(")[0]
    namespace: dict[str, object] = {"__name__": "docs_example"}
    exec(compile(text, where, "exec"), namespace)  # noqa: S102 - our own documentation
    assert isinstance(namespace["scenario"], Scenario)


def test_there_are_examples_to_check() -> None:
    assert len(blocks("json")) >= 3 and len(blocks("python")) >= 3
