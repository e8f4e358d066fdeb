"""The walk-through's files are the chapter's, as written: examples/dol_scenario.py is its
section 3.1 and examples/run_simulation.py its section 3.2 with one added line (the import of
the scenario, which the chapter leaves out). tests/seed/ holds the chapter as it was given."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHAPTER = ROOT / "tests" / "seed" / "simulation-sandbox-chapter.md"
GIVEN = ROOT.parent / "shared" / "seed" / "simulation-sandbox-chapter.md"  # beside a checkout, where it was given


def block(starting: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", CHAPTER.read_text(encoding="utf-8"), re.S)
    found = [b for b in blocks if b.startswith(starting)]
    assert len(found) == 1, f"the chapter has {len(found)} blocks starting {starting!r}"
    return found[0]


def test_dol_scenario_is_section_3_1_verbatim() -> None:
    assert (ROOT / "examples" / "dol_scenario.py").read_text(encoding="utf-8") == block("# file: dol_scenario.py")


def test_run_simulation_is_section_3_2_plus_the_scenarios_import() -> None:
    written = (ROOT / "examples" / "run_simulation.py").read_text(encoding="utf-8").splitlines()
    chapter = block("# file: run_simulation.py").splitlines()
    assert "from dol_scenario import scenario" in written
    written.remove("from dol_scenario import scenario")
    assert written == chapter


def test_the_kept_chapter_is_the_one_given_when_both_are_here() -> None:
    kept = CHAPTER.read_text(encoding="utf-8")
    assert "### 5.1  Public Client Helper" in kept and "## 8. Hands-On Mini-Lab" in kept
    if GIVEN.is_file():
        assert kept == GIVEN.read_text(encoding="utf-8")
