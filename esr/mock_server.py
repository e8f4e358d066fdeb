"""`python -m esr.mock_server`: the sandbox (ESR server + sample claims system), as `esr sandbox`."""

from __future__ import annotations

import sys

from esr.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["sandbox", *sys.argv[1:]]))
