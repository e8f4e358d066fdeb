"""The sample system under test over HTTP: the DOL claims service and a fake Treasury.

    POST /claims                 {"ssn": ..., "name": ...} -> 201 {"id", "status", "filed_at"}
                                 (db_down: 503, or 202 with status "queued" in mode queue);
                                 once per Idempotency-Key: a repeat gets the first answer with
                                 Idempotent-Replayed: true, the key with another body 422
    GET  /claims/{id}            {"id", "status": queued | in_review | approved | paid | denied, ...}
    GET  /treasury/payments      the payments this run's claims were paid (never leaves the machine)
    DELETE /_esr/runs/{run_id}   purge a run's data fork (the ESR sandbox calls it when a run ends)

    POST   /_esr/runs/{run_id}/faults/{name}   start a fault: {"fault", "args", "params", "sim_time"}
    DELETE /_esr/runs/{run_id}/faults/{name}   end it (again: 200, "was_active": false)
    GET    /_esr/runs/{run_id}/faults          {"run_id", "active": {name: params}}

It lives in the simulated time of the `X-ESR-Sim-Time` header (a fault call may carry it as
`sim_time` in its body instead), and keeps one `ClaimsOffice` (a fork of the wage records, its
own queue, ledger and faults) per `X-ESR-Run-Id`. Every claims and Treasury response carries
`X-Cost`, the cloud cost of serving it, which scenarios add up as `cloud_cost`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from esr.core.sim_headers import IDEMPOTENCY_KEY, RUN_ID, sim_time, time_warp
from esr.sandbox.claims import (
    OFFICE_ACTIONS,
    OFFICE_FAULTS,
    BadFaultParameter,
    ClaimsDatabaseDown,
    ClaimsOffice,
    FaultActive,
    FaultError,
    IntakePaused,
    OfficeConfig,
    UnknownFault,
    known_fault,
)
from esr.sandbox.idempotency import BadKey, IdempotencyStore, KeyReused, fingerprint, read_key

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
        self.replies: dict[str, IdempotencyStore] = {}  # run id -> its filings' answers by Idempotency-Key

    def office(self, run_id: str, warp: float | None = None) -> ClaimsOffice:
        """The run's office, made at its first request: its data fork (its own copy of the wage
        records), working at the run's warp when the request carries it."""
        office = self.offices.get(run_id)
        if office is None:
            office = self.offices[run_id] = ClaimsOffice(self.config, dict(self.base_records), warp=warp)
        elif office.warp is None and warp is not None and not office.claims:
            office.warp = warp  # made by a fault call (which carries no warp) before the first claim
        return office

    def purge(self, run_id: str) -> bool:
        self.replies.pop(run_id, None)
        return self.offices.pop(run_id, None) is not None

    # -- handlers -------------------------------------------------------------------------
    def _reply(self, data: object, cost: float, status: int = 200) -> web.Response:
        return web.Response(body=orjson.dumps(data), status=status, content_type="application/json",
                            headers={"X-Cost": f"{cost:g}"})

    async def file_claim(self, request: web.Request) -> web.Response:
        """File a claim, once per Idempotency-Key (see esr.sandbox.idempotency)."""
        try:
            body = orjson.loads(await request.read())
            ssn = str(body["ssn"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return self._reply({"error": "send JSON with an \"ssn\""}, self.costs.lookup, 400)
        run_id = request.headers.get(RUN_ID, NO_RUN)
        key = request.headers.get(IDEMPOTENCY_KEY)
        digest = b""
        if key is not None:
            try:
                key, digest = read_key(key), fingerprint(body)
                first = self.replies.get(run_id, _NO_REPLIES).lookup(key, digest)
            except BadKey as exc:
                return self._reply({"error": str(exc)}, self.costs.lookup, 400)
            except KeyReused as exc:
                return _problem(422, "Idempotency-Key reused with another request", str(exc), self.costs.lookup)
            if first is not None:
                return web.Response(body=first.body, status=first.status, content_type="application/json",
                                    headers={"X-Cost": f"{self.costs.lookup:g}", "Idempotent-Replayed": "true"})
        office = self.office(run_id, time_warp(request.headers))
        if ssn not in office.wage_records:
            office.wage_records[ssn] = reported_wages(ssn)
        try:
            claim = office.file(ssn, sim_time(request.headers))
        except (ClaimsDatabaseDown, IntakePaused) as exc:  # nothing filed: not remembered, may be sent again
            return self._reply({"error": str(exc)}, self.costs.lookup, 503)
        status = claim.status_at(claim.filed)
        answer = {"id": claim.id, "status": status, "filed_at": claim.filed.isoformat()}
        code = 202 if status == "queued" else 201
        if key is not None:
            replies = self.replies.get(run_id)
            if replies is None:
                replies = self.replies[run_id] = IdempotencyStore(self.config.idempotency_keys)
            replies.remember(key, digest, code, orjson.dumps(answer))
        return self._reply(answer, self.costs.filing, code)

    async def get_claim(self, request: web.Request) -> web.Response:
        office = self.office(request.headers.get(RUN_ID, NO_RUN), time_warp(request.headers))
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
        office = self.office(request.headers.get(RUN_ID, NO_RUN), time_warp(request.headers))
        now = sim_time(request.headers)
        paid: list[dict[str, Any]] = [{"claim": c, "amount": a, "paid_at": t.isoformat()}
                                      for c, a, t in office.payments if t <= now]
        return self._reply({"payments": paid, "total": round(sum(p["amount"] for p in paid), 2)}, self.costs.lookup)

    async def purge_run(self, request: web.Request) -> web.Response:
        purged = self.purge(request.match_info["run_id"])
        return web.json_response({"purged": purged}, status=200 if purged else 404)

    # -- faults (called by ESR's failure injection; no X-Cost: not traffic) ----------------
    async def start_fault(self, request: web.Request) -> web.Response:
        run_id, name = request.match_info["run_id"], request.match_info["name"]
        try:
            now, args, params = await _fault_call(request, name)
            checked = self.office(run_id).start_fault(name, now, args, params)
        except FaultError as exc:
            return _refused(run_id, name, exc)
        return web.json_response({"run_id": run_id, "fault": name, "active": True, "params": checked})

    async def end_fault(self, request: web.Request) -> web.Response:
        """Idempotent: ESR may send a recovery twice (a normal end, then an abort)."""
        run_id, name = request.match_info["run_id"], request.match_info["name"]
        try:
            now, _, _ = await _fault_call(request, name)
            known_fault(name)
            office = self.offices.get(run_id)  # none: nothing to recover, and no office to make
            was_active = office is not None and office.end_fault(name, now)
        except FaultError as exc:
            return _refused(run_id, name, exc)
        return web.json_response({"run_id": run_id, "fault": name, "active": False, "was_active": was_active})

    async def act(self, request: web.Request) -> web.Response:
        """A trainee's decision (training mode): add_caseworkers(n), pause_intake, resume_intake."""
        run_id, name = request.match_info["run_id"], request.match_info["name"]
        try:
            now, args, params = await _fault_call(request, name)
            state = self.office(run_id).act(name, now, args, params)
        except FaultError as exc:
            return _refused(run_id, name, exc, kind="action", known=OFFICE_ACTIONS)
        return web.json_response({"run_id": run_id, "action": name, **state})

    async def list_faults(self, request: web.Request) -> web.Response:
        run_id = request.match_info["run_id"]
        office = self.offices.get(run_id)
        return web.json_response({"run_id": run_id, "active": office.faults if office else {}})


_NO_REPLIES = IdempotencyStore(1)  # a run that has filed nothing with a key yet


def _problem(status: int, title: str, detail: str, cost: float) -> web.Response:
    """An RFC 9457 problem, as draft-ietf-httpapi-idempotency-key-header asks for its errors."""
    return web.Response(body=orjson.dumps({"title": title, "status": status, "detail": detail}), status=status,
                        content_type="application/problem+json", headers={"X-Cost": f"{cost:g}"})


_FAULT_STATUS: dict[type[FaultError], int] = {UnknownFault: 404, BadFaultParameter: 400, FaultActive: 409}


def _refused(run_id: str, name: str, exc: FaultError, *, kind: str = "fault",
             known: tuple[str, ...] = OFFICE_FAULTS) -> web.Response:
    """A refused fault (or trainee action) call: the status its error calls for, and why."""
    body: dict[str, Any] = {"run_id": run_id, kind: name, "error": str(exc)}
    if isinstance(exc, UnknownFault):
        body["known"] = list(known)
    return web.json_response(body, status=_FAULT_STATUS[type(exc)])


async def _fault_call(request: web.Request, name: str) -> tuple[datetime, list[Any], dict[str, Any]]:
    """A fault call's simulated time, positional and named parameters, from the body ESR sends
    (`{"fault", "args", "params", "sim_time", "run_id"}`, every key optional, or no body at all)."""
    raw = await request.read()
    try:
        body = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError:
        raise BadFaultParameter('send a JSON object {"fault", "args", "params", "sim_time"}, or no body') from None
    if not isinstance(body, dict):
        raise BadFaultParameter(f'the body must be a JSON object {{"fault", "args", "params", "sim_time"}}; '
                                f'got {body!r}')
    for key, path_value in (("fault", name), ("run_id", request.match_info["run_id"])):
        if body.get(key, path_value) != path_value:
            raise BadFaultParameter(f"the body's {key} is {body[key]!r} but the path names {path_value!r}")
    args, params = body.get("args"), body.get("params")
    args, params = [] if args is None else args, {} if params is None else params
    if not isinstance(args, list) or not isinstance(params, dict):
        raise BadFaultParameter('"args" must be a JSON array and "params" a JSON object')
    if "sim_time" not in body:
        return sim_time(request.headers), args, params
    try:
        now = datetime.fromisoformat(body["sim_time"])
    except (TypeError, ValueError):
        raise BadFaultParameter(f'"sim_time" must be an ISO 8601 time, e.g. 2026-03-02T12:00:00+00:00; '
                                f'got {body["sim_time"]!r}') from None
    return (now if now.tzinfo else now.replace(tzinfo=UTC)), args, params


CLAIMS: web.AppKey[ClaimsService] = web.AppKey("claims", ClaimsService)


def make_claims_app(service: ClaimsService | None = None) -> web.Application:
    service = service or ClaimsService()
    app = web.Application()
    app[CLAIMS] = service
    app.router.add_post("/claims", service.file_claim)
    app.router.add_get("/claims/{claim_id}", service.get_claim)
    app.router.add_get("/treasury/payments", service.payments)
    app.router.add_delete("/_esr/runs/{run_id}", service.purge_run)
    app.router.add_post("/_esr/runs/{run_id}/faults/{name}", service.start_fault)
    app.router.add_delete("/_esr/runs/{run_id}/faults/{name}", service.end_fault)
    app.router.add_get("/_esr/runs/{run_id}/faults", service.list_faults)
    app.router.add_post("/_esr/runs/{run_id}/actions/{name}", service.act)
    return app


CLAIM_JOURNEY = {
    "name": "claim",
    "data": {"ssn": "ssn", "name": "name"},
    "steps": [
        {"name": "file", "request": {"method": "POST", "path": "/claims",
                                     "json": {"ssn": "{{ data.ssn }}", "name": "{{ data.name }}"}},
         "expect": {"status": [201, 202]}, "extract": {"claim_id": "$.id"},  # 202: held (db_down, mode queue)
         "counters": {"cloud_cost": "header:X-Cost"}},
        {"name": "decided", "request": {"path": "/claims/{{ vars.claim_id }}"},
         "poll": {"every": "1h", "until": "$.status in ['paid', 'denied']", "give_up_after": "72h"},
         "counters": {"cloud_cost": "header:X-Cost",
                      "claims_processed": {"value": 1, "when": "$.status == 'paid'"}}},
    ],
    "sla": [{"from": "file", "to": "decided", "within": "48h"}],
}
"""The sample system's default journey: file a claim, then poll it hourly (simulated) until it
is paid or denied; the 48-hour SLA runs from filing to that decision, so a claim held while the
database is down counts against it."""
