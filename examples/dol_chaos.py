"""The chapter's FAQ: "Does ESR support chaos testing? Yes: add failure_injection=["db_down@hour12"]
to the scenario." The walk-through's scenario with the claims database down from noon, judged
also on `error_rate < 0.01` (one of the chapter's one-line assertions)."""

from dol_scenario import scenario
from hms_esr_client import Scenario, launch, report

chaos = Scenario.from_dict(scenario.to_dict() | {
    "name": "DOL_48h_SLA_db_down",
    "failure_injection": ["db_down@hour12"],
    "assertions": [*scenario.assertions, "error_rate < 0.01"],
})

run_id = launch(chaos, target="prod-like-staging.dol.gov")
print("Simulation started:", run_id)

summary = report(run_id, wait=True)
print(summary["verdict"])
for fault in summary.get("faults", {}).get("windows", []):
    during = fault.get("during") or {}
    print(f"{fault['fault']}: simulated hours {fault['start_sim_hour']:g} to {fault['end_sim_hour']:g}, "
          f"{int(during.get('requests') or 0):,} requests, error rate {during.get('error_rate') or 0:.1%}")
