"""The sample system under test over HTTP: the DOL claims service and a fake Treasury.

    POST /claims                 {"ssn": ..., "name": ...} -> 201 {"id", "status", "filed_at"}
    GET  /claims/{id}            {"id", "status": in_review | approved | paid | denied, ...}
    GET  /treasury/payments      the payments this run's claims were paid (never leaves the machine)
    DELETE /_esr/runs/{run_id}   purge a run's data fork (the ESR sandbox calls it when a run ends)

It lives in the simulated time of the `X-ESR-Sim-Time` header, and keeps one `ClaimsOffice`
(a fork of the wage records, its own queue and ledger) per `X-ESR-Run-Id`. Every response
carries `X-Cost`, the cloud cost of serving it, which scenarios add up as `cloud_cost`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import orjson
from aiohttp import web

from ..sim_headers import RUN_ID, sim_time
from .claims import ClaimsOffice, OfficeConfig

__all__ = ["CLAIMS", "ClaimsService", "make_claims_app"]

NO_RUN = "-"


@dataclass(frozen=True, slots=True)
class Costs:
    filing: float = 0.004
    lookup: float = 0.0008


def base_wage_records(count: int = 10_000) -> dict[str, int]:
    """The shared wage-records table each run forks (synthetic, deterministic)."""
    return {f"{900 + i // 10_000:03d}-{(i // 100) % 100:02d}-{i % 10_000:04d}": 800 + (i * 7919) % 9000
            for i in range(count)}


def reported_wages(ssn: str) -> int:
    """Quarterly wages the state's wage reporting gives for an SSN not in the table (92 % qualify)."""
    digest = int.from_bytes(hashlib.sha256(ssn.encode()).digest()[:4], "big")
    return 0 if digest % 100 < 8 else 1000 + digest % 8000


class ClaimsService:
    def __init__(self, config: OfficeConfig | None = None, costs: Costs | None = None) -> None:
        self.config = config or OfficeConfig()
        self.costs = costs or Costs()
        self.base_records = base_wage_records()
        self.offices: dict[str, ClaimsOffice] = {}

    def office(self, run_id: str) -> ClaimsOffice:
        office = self.offices.get(run_id)
        if office is None:  # the run's data fork: its own copy of the wage records
            office = self.offices[run_id] = ClaimsOffice(self.config, dict(self.base_records))
        return office

    def purge(self, run_id: str) -> bool:
        return self.offices.pop(run_id, None) is not None

    # -- handlers -------------------------------------------------------------------------
    def _reply(self, data: object, cost: float, status: int = 200) -> web.Response:
        return web.Response(body=orjson.dumps(data), status=status, content_type="application/json",
                            headers={"X-Cost": f"{cost:g}"})

    async def file_claim(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
            ssn = str(body["ssn"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return self._reply({"error": "send JSON with an \"ssn\""}, self.costs.lookup, 400)
        office = self.office(request.headers.get(RUN_ID, NO_RUN))
        if ssn not in office.wage_records:
            office.wage_records[ssn] = reported_wages(ssn)
        claim = office.file(ssn, sim_time(request.headers))
        return self._reply({"id": claim.id, "status": claim.status_at(claim.filed),
                            "filed_at": claim.filed.isoformat()}, self.costs.filing, 201)

    async def get_claim(self, request: web.Request) -> web.Response:
        office = self.office(request.headers.get(RUN_ID, NO_RUN))
        try:
            claim = office.claims[int(request.match_info["claim_id"])]
        except (KeyError, ValueError):
            return self._reply({"error": "no such claim in this run"}, self.costs.lookup, 404)
        now = sim_time(request.headers)
        status = claim.status_at(now)
        return self._reply({"id": claim.id, "status": status, "filed_at": claim.filed.isoformat(),
                            "paid_at": claim.paid.isoformat() if status == "paid" and claim.paid else None,
                            "amount": claim.amount}, self.costs.lookup)

    async def payments(self, request: web.Request) -> web.Response:
        office = self.office(request.headers.get(RUN_ID, NO_RUN))
        now = sim_time(request.headers)
        paid = [{"claim": c, "amount": a, "paid_at": t.isoformat()} for c, a, t in office.payments if t <= now]
        return self._reply({"payments": paid, "total": round(sum(p["amount"] for p in paid), 2)}, self.costs.lookup)

    async def purge_run(self, request: web.Request) -> web.Response:
        purged = self.purge(request.match_info["run_id"])
        return web.json_response({"purged": purged}, status=200 if purged else 404)


CLAIMS: web.AppKey[ClaimsService] = web.AppKey("claims", ClaimsService)


def make_claims_app(service: ClaimsService | None = None) -> web.Application:
    service = service or ClaimsService()
    app = web.Application()
    app[CLAIMS] = service
    app.router.add_post("/claims", service.file_claim)
    app.router.add_get("/claims/{claim_id}", service.get_claim)
    app.router.add_get("/treasury/payments", service.payments)
    app.router.add_delete("/_esr/runs/{run_id}", service.purge_run)
    return app


CLAIM_JOURNEY = {
    "name": "claim",
    "data": {"ssn": "ssn", "name": "name"},
    "steps": [
        {"name": "file", "request": {"method": "POST", "path": "/claims",
                                     "json": {"ssn": "{{ data.ssn }}", "name": "{{ data.name }}"}},
         "expect": {"status": [201]}, "extract": {"claim_id": "$.id"},
         "counters": {"cloud_cost": "header:X-Cost"}},
        {"name": "decided", "request": {"path": "/claims/{{ vars.claim_id }}"},
         "poll": {"every": "1h", "until": "$.status in ['paid', 'denied']", "give_up_after": "72h"},
         "counters": {"cloud_cost": "header:X-Cost",
                      "claims_processed": {"value": 1, "when": "$.status == 'paid'"}}},
    ],
    "sla": [{"from": "file", "to": "decided", "within": "48h"}],
}
"""The sample system's default journey: file a claim, then poll it hourly (simulated) until it
is paid or denied; the 48-hour SLA runs from filing to that decision."""
