"""What a command prints at its end, and the exit code it returns.

    0  PASS (and every command that did what it was asked)
    1  FAIL: an assertion failed
    2  ERROR, or invalid input (a scenario, a flag, a file): the message says which and where
    3  ABORTED: Ctrl-C, SIGTERM or an abort

CI pipelines read the code; people read the verdict table (or `--json`) on stdout and
errors on stderr.
"""

from __future__ import annotations

import json
import sys

from esr.core.errors import EsrError
from esr.core.verdict import EXIT_CODES, Verdict

__all__ = ["EXIT_ABORTED", "EXIT_INVALID", "EXIT_OK", "fail", "report_verdict"]

EXIT_OK = 0
EXIT_INVALID = 2
EXIT_ABORTED = EXIT_CODES["ABORTED"]


def fail(exc: EsrError | str) -> int:
    """`esr: error: ...` on stderr, without a traceback; the exit code of invalid input."""
    print(f"esr: error: {exc}", file=sys.stderr)
    return EXIT_INVALID


def report_verdict(verdict: Verdict, *, as_json: bool, log_path: str | None = None) -> int:
    """The verdict table (or its JSON with `run_log`) on stdout; the verdict's exit code."""
    from esr.observe.display import console, verdict_table

    if as_json:
        print(json.dumps(verdict.to_dict() | {"run_log": log_path}, indent=2))
    else:
        out = console()
        for part in verdict_table(verdict, log_path):
            out.print(part)
    return verdict.exit_code
