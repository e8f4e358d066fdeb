"""`esr run --kafka` and `esr replay --kafka` after Ctrl-C or SIGTERM: the abort published, its verdict awaited."""

from __future__ import annotations

import sys
from typing import Any

from esr.bus.kafka import KafkaSettings
from esr.cli.stop_signals import Interrupted, StopSignals
from esr.core.events import RunStarted
from esr.producers.launch import VerdictWatch, abort_run

__all__ = ["abort_and_wait"]


def abort_and_wait(settings: KafkaSettings, started: RunStarted, reason: str, watch: VerdictWatch,
                   stop: StopSignals) -> dict[str, Any] | None:
    """After Ctrl-C or SIGTERM (`esr run --kafka`, `esr replay --kafka`): publish the abort,
    then wait 30 s for the ABORTED verdict, or until another signal. None if none came."""
    abort_run(settings, started, reason)  # further signals do not cut this short
    print(f"esr: run {started.run_id} {reason}: the abort is published; waiting for its verdict "
          "(press Ctrl-C again to stop waiting)", file=sys.stderr, flush=True)
    verdict: dict[str, Any] | None = None
    try:
        with stop.again():
            verdict = watch.wait(started.run_id, 30)
    except Interrupted:
        pass  # a second signal: the abort is out, stop waiting for its verdict
    if verdict is None:
        print(f"esr: run {started.run_id} aborted; its verdict did not arrive on {settings.topic('verdicts')} "
              "(is `esr worker metrics` running?)", file=sys.stderr)
    return verdict
