"""Walk-through, part 1: the U.S. Department of Labor moves unemployment claims from a 7-day to
a 48-hour payment deadline. Will staging hold a day with an evening spike of 40 claims/s?"""

from hms_esr_client import Scenario


def cost_per_claim(metrics):
    """Cloud cost per paid claim (the sandbox defines the same metric server-side)."""
    return metrics["cloud_cost"] / metrics["claims_processed"]


scenario = Scenario(
    name="DOL_48h_SLA_Stress",
    duration_hours=24,
    time_warp=1440,  # one simulated day per real minute
    drain_warp=2880,  # after the load, deadlines are decided at twice the pace
    load_profile=[(0, 5), (8, 20), (18, 40), (22, 10)],
    assertions=[
        "sla_48h_success_rate > 0.95",
        "cost_per_claim < 0.05",
        "error_rate < 0.01",
    ],
    failure_injection=["db_down@hour12"],
    seed=42,
    metrics=[cost_per_claim],
)
