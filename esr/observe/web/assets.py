"""Where the charting library is: `ESR_ASSETS`, else what `make install` put under
deploy/dashboard (npm `uplot`). Never a CDN: agencies run air-gapped, and so do the tests."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from esr.core.errors import EsrError

__all__ = ["ASSET_FILES", "asset", "charts_script"]

ASSET_FILES = ("uPlot.iife.min.js", "uPlot.min.css")
_REPO_ASSETS = Path(__file__).resolve().parents[3] / "deploy" / "dashboard" / "node_modules" / "uplot" / "dist"
_STATIC = Path(__file__).resolve().parent / "static"


@cache
def _read(path: Path) -> bytes:
    return path.read_bytes()


def asset(name: str, folder: Path | None = None) -> bytes:
    """One of ASSET_FILES, from `folder` (ESR_ASSETS) or the checkout's deploy/dashboard; an
    EsrError saying how to install it when it is missing."""
    if name not in ASSET_FILES:
        raise EsrError(f"no asset {name!r}; assets are {', '.join(ASSET_FILES)}")
    path = (folder or _REPO_ASSETS) / name
    if not path.is_file():
        raise EsrError(f"the charting library is not installed ({path} is missing): run `make install` "
                       "(npm ci --prefix deploy/dashboard) or set ESR_ASSETS to a folder with "
                       f"{' and '.join(ASSET_FILES)}")
    return _read(path)


def charts_script() -> bytes:
    """Our own chart drawing script (static/charts.js)."""
    return _read(_STATIC / "charts.js")
