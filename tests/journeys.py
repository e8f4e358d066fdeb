"""Journeys several test files play: the claims journey of the demo target (file, then poll
hourly until paid, a 48 h deadline between them), for the real-time and the virtual-time tests;
`POLLED_CLAIM` is the same without user data or counters."""

from __future__ import annotations

from typing import Any

__all__ = ["CLAIM_JOURNEY", "POLLED_CLAIM"]

CLAIM_JOURNEY: dict[str, Any] = {
    "name": "claim",
    "data": {"ssn": "ssn", "wages": {"int": [1000, 9000]}},
    "steps": [
        {"name": "file", "request": {"method": "POST", "path": "/claims",
                                     "json": {"ssn": "{{ data.ssn }}", "wages": "{{ data.wages }}"}},
         "expect": {"status": [201]}, "extract": {"claim_id": "$.id"},
         "counters": {"cloud_cost": "header:X-Cost"}},
        {"name": "paid", "request": {"path": "/claims/{{ vars.claim_id }}"},
         "poll": {"every": "1h", "until": "$.status == 'paid'", "give_up_after": "72h"},
         "counters": {"claims_paid": {"value": 1, "when": "$.status == 'paid'"}}},
    ],
    "sla": [{"from": "file", "to": "paid", "within": "48h"}],
}

POLLED_CLAIM: dict[str, Any] = {
    "name": "claim",
    "steps": [
        {"name": "file", "request": {"method": "POST", "path": "/claims", "json": {"n": 1}},
         "expect": {"status": [201]}, "extract": {"claim_id": "$.id"}},
        {"name": "paid", "request": {"path": "/claims/{{ vars.claim_id }}"},
         "poll": {"every": "1h", "until": "$.status == 'paid'", "give_up_after": "72h"}},
    ],
    "sla": [{"from": "file", "to": "paid", "within": "48h"}],
}
