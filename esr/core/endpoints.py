"""`endpoint_label`: the label that groups requests to the same endpoint (`GET /claims/{id}`).

Replay and the Kafka bot workers count a logged request under this label, as a scenario's
journeys count theirs under their own endpoint labels.
"""

from __future__ import annotations

import re

__all__ = ["endpoint_label"]

_ID_SEGMENT = re.compile(
    r"^(?:\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{16,}|"
    r"[A-Za-z0-9_-]{20,})$")


def endpoint_label(method: str, target: str) -> str:
    """`GET /claims/{id}` for `GET /claims/8812?x=1`: numbers, UUIDs and long tokens become {id}."""
    path = target.split("?", 1)[0]
    segments = ["{id}" if _ID_SEGMENT.match(s) else s for s in path.split("/")]
    return f"{method} {'/'.join(segments) or '/'}"
