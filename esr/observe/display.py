"""Terminal output: the live progress line and the verdict table (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from esr.core.plan import RunPlan
from esr.core.units import format_duration
from esr.core.verdict import Verdict

__all__ = ["plan_table", "printable", "progress_text", "verdict_table"]

# C0 and C1 controls, DEL, and the bidirectional overrides that reorder what a reader sees
_CONTROLS = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]} | {
    c: f"\\u{c:04x}" for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]}


def printable(text: object, *, lines: bool = False) -> str:
    """Text from logs, scenarios or targets made safe for a terminal: control characters (an
    escape sequence could retitle the window, move the cursor or hide lines) are shown escaped;
    with `lines`, newlines stay (text of several lines)."""
    if lines:
        return "\n".join(part.translate(_CONTROLS) for part in str(text).split("\n"))
    return str(text).translate(_CONTROLS)


def _text(value: object, style: str = "") -> Text:
    """A table cell of someone else's text: escaped, and never read as rich markup."""
    return Text(printable(value), style)


_STYLE = {"PASS": "bold green", "FAIL": "bold red", "ERROR": "bold yellow", "ABORTED": "bold magenta"}


def _num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.{digits}f}" if abs(value) >= 0.01 else f"{value:.4g}"


def progress_text(s: dict[str, Any]) -> Text:
    """One line: sim time, real elapsed, rate, p95, errors, SLA so far."""
    share = min(1.0, s["sim_hours"] / s["duration_hours"]) if s["duration_hours"] else 1.0
    bar = "█" * int(share * 20) + "░" * (20 - int(share * 20))
    sla = s["sla_met"] + s["sla_missed"]
    sla_text = f"SLA {s['sla_met'] / sla:.1%} of {sla}" if sla else "SLA -"
    return Text.assemble(
        (f"{s['status']:<8} ", "bold"), bar,
        f" sim {s['sim_time'][:16].replace('T', ' ')} (h {s['sim_hours']:.1f})",
        f" | real {format_duration(s['real_seconds'])}",
        f" | {s['rate']:.0f} req/s (plan {s['planned_rate']:g} starts/s)",
        f" | p95 {_num(s['p95_ms'], 1)} ms",
        f" | errors {s['errors']:,}/{s['requests']:,}",
        f" | {sla_text} | open {s['open_journeys']:,}",
    )


def verdict_table(verdict: Verdict, log_path: str | None = None) -> list[Any]:
    """Renderables: the assertion table, the headline figures and the verdict line."""
    table = Table(title=_text(f"run {verdict.run_id}"), title_justify="left")
    table.add_column("assertion")
    table.add_column("observed", justify="right")
    table.add_column("threshold", justify="right")
    table.add_column("result")
    for a in verdict.assertions:
        result = {True: Text("ok", "green"), False: Text("FAILED", "red"), None: Text("no data", "yellow")}[a.holds]
        note = f" ({a.detail})" if a.detail else ""
        table.add_row(_text(a.assertion), _num(a.observed, 3), _num(a.threshold, 3), result + printable(note))
    s, c, g = verdict.summary, verdict.completeness, verdict.generator
    figures = Table.grid(padding=(0, 2))
    figures.add_column(style="dim")
    figures.add_column()
    figures.add_row("requests", f"{_num(s.get('requests'))}  errors {_num(s.get('errors'))} "
                                f"({_num((s.get('error_rate') or 0) * 100, 2)} %)"
                                f"  throughput {_num(s.get('throughput_rps'))} req/s")
    figures.add_row("latency ms", f"p50 {_num(s.get('latency_p50_ms'))}  p95 {_num(s.get('latency_p95_ms'))}  "
                                  f"p99 {_num(s.get('latency_p99_ms'))}  max {_num(s.get('latency_max_ms'))}"
                                  f"  (raw p99 {_num(s.get('raw_latency_p99_ms'))})")
    figures.add_row("journeys", f"started {_num(s.get('journeys_started'))}"
                                f"  completed {_num(s.get('journeys_completed'))}"
                                f"  failed {_num(s.get('journeys_failed'))}  gave up {_num(s.get('journeys_gave_up'))}"
                                f"  cut {_num(s.get('journeys_cut'))}")
    for why, count in list(verdict.journey_failures.items())[:3]:
        figures.add_row("why journeys ended early", _text(f"{count:,} x {why}"))
    slas = sorted({k[4:-13] for k in s if k.startswith("sla_") and k.endswith("_success_rate")})
    for sla in slas:
        rate = s.get(f"sla_{sla}_success_rate")
        figures.add_row(f"SLA {sla}", f"{_num(rate * 100 if rate is not None else None)} % met "
                                      f"({_num(s.get(f'sla_{sla}_met'))} met, "
                                      f"{_num(s.get(f'sla_{sla}_missed'))} missed)")
    figures.add_row("completeness", f"planned {_num(c.get('arrivals_planned'))}"
                                    f"  started {_num(c.get('journeys_started'))}"
                                    f"  sent {_num(c.get('requests_sent'))}"
                                    f"  recorded {_num(c.get('results_recorded'))}")
    figures.add_row("generator", f"late starts {_num(g['late_starts'])} ({g['late_start_rate']:.2%} over "
                                 f"{g['late_threshold_ms']:g} ms){'  SATURATED' if g['saturated'] else ''}"
                                 + (f"  re-sent after a takeover {_num(g['requests_resent'])}"
                                    if g.get("requests_resent") else ""))
    faults = verdict.faults
    if faults:
        steady = faults["steady_state"]
        if "error" in steady:
            figures.add_row("steady state", _text(steady["error"]))
        else:
            figures.add_row("steady state", f"before hour {_num(steady['until_sim_hour'])}: error rate "
                                            f"{_num(steady['error_rate'] * 100)} %"
                                            f"  p95 {_num(steady['latency_p95_ms'])} ms")
        for w in faults["windows"]:
            figures.add_row(_text(f"fault {w['fault']}", "dim"), _text(_fault_line(w)))
    if verdict.time:
        figures.add_row("time", verdict.time["note"])
    if log_path:
        figures.add_row("run log", _text(log_path))
    line = Text.assemble(("VERDICT ", "bold"), (verdict.status, _STYLE[verdict.status]),
                         f"  {printable(verdict.reason)}")
    return [table, figures, line]


def _fault_line(w: dict[str, Any]) -> str:
    if not w["applied"]:
        return f"NOT APPLIED: {w['detail']}"
    d = w["during"]
    rate = d.get("error_rate")
    text = (f"h {_num(w['start_sim_hour'])}-{_num(w['end_sim_hour'])}: {_num(d.get('requests'))} requests, "
            f"errors {_num(rate * 100 if rate is not None else None)} %, p95 {_num(d.get('latency_p95_ms'))} ms")
    if w["recovered"] is True:
        text += f"; recovered in {format_duration(w['recovery_time_s'])} simulated"
    elif w["recovered"] is False:
        text += "; NOT recovered by the end of the run"
    elif w.get("note"):
        text += f"; {w['note']}"
    if not w["recovery_action_ok"]:
        text += f"; RECOVERY ACTION FAILED: {w['recovery_detail']}"
    return text


def plan_table(plan: RunPlan) -> Table:
    grid = Table(title=_text(f"plan: {plan.name}"), title_justify="left", show_header=False)
    grid.add_column(style="dim")
    grid.add_column()
    grid.add_row("simulated span", f"{plan.sim_hours:g} h at warp {plan.time_warp:g}")
    grid.add_row("real duration of the load", format_duration(plan.load_real_seconds))
    grid.add_row("peak real request rate", f"{plan.peak_rate:g} journey starts/s")
    grid.add_row("journeys", f"{plan.planned_journeys:,} planned (expected {plan.expected_journeys:,.0f});"
                             f" {plan.journeys_per_sim_hour_at_peak:,.0f} per simulated hour at peak")
    grid.add_row("drain bound", f"{plan.drain_bound_sim_hours:g} simulated h = at most "
                                f"{format_duration(plan.drain_bound_real_seconds)} real"
                                f" at drain warp {plan.drain_warp:g}")
    for name, most in plan.max_requests_per_journey.items():
        grid.add_row(_text(f"journey {name}", "dim"),
                     f"at most {most} requests" if most is not None else "Python journey")
    for text in plan.assertions:
        grid.add_row("assertion", _text(text))
    for text in plan.failure_injection:
        grid.add_row("fault", _text(text))
    grid.add_row("warp", plan.note)
    return grid


def console(stderr: bool = False) -> Console:
    return Console(stderr=stderr, highlight=False, soft_wrap=False)
