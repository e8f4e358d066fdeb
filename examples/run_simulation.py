"""Walk-through, part 2: launch the scenario on the ESR server and print the verdict."""

from dol_scenario import scenario

from hms_esr_client import launch, report

run_id = launch(scenario, target="prod-like-staging.dol.gov")
print(f"run {run_id} launched")
result = report(run_id, wait=True)
print(result["verdict"])
