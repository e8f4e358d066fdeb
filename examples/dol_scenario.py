# file: dol_scenario.py
from hms_esr_client import Scenario

scenario = Scenario(
    name="DOL_48h_SLA_Stress",
    duration_hours=24,            # in simulated time
    time_warp=60,                 # 1 real min = 1 sim hour
    load_profile=[                # simple table: hour -> RPS
        ( 0,  5),  # midnight calm
        ( 8, 30),  # morning spike
        (18, 40)   # evening spike
    ],
    assertions=[
        "latency_p95_ms < 2000",
        "sla_48h_success_rate > 0.95"
    ]
)
