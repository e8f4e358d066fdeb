"""Rewrite the golden event logs from the current code: `python tests/golden/regenerate.py`.

Only after a deliberate change to what a run emits; the diff of the .jsonl files is the review."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "unit"))

from test_virtual_runs import CASES, play_case  # noqa: E402
from virtual_run import event_lines  # noqa: E402


def main() -> None:
    for name in sorted(CASES):
        with tempfile.TemporaryDirectory() as home:
            lines = event_lines(play_case(name, Path(home)).events)
        (HERE / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
        print(f"{name}.jsonl: {len(lines)} events")


if __name__ == "__main__":
    main()
