"""The walk-through scripts' import name: `from hms_esr_client import Scenario, launch, report`."""

from esr.client import EsrServerError, Scenario, launch, report

__all__ = ["EsrServerError", "Scenario", "launch", "report"]
