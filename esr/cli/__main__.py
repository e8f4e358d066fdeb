"""`python -m esr.cli ...`: the `esr` command."""

from __future__ import annotations

import sys

from esr.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
