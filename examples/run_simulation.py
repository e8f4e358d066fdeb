# file: run_simulation.py
from dol_scenario import scenario
from hms_esr_client import launch, report

run_id = launch(scenario, target="prod-like-staging.dol.gov")
print("Simulation started:", run_id)

summary = report(run_id, wait=True)   # blocks until done
print(summary["verdict"])             # => "PASS" or "FAIL"
