"""Someone else's text on a terminal: control characters escaped, never read as rich markup."""

from __future__ import annotations

import io

from rich.console import Console

from esr.core.verdict import Verdict
from esr.observe.display import printable, verdict_table

EVIL = "\x1b]0;pwned\x07\x1b[2J[bold red]shouting[/]\u202egnp.exe\r\n"


def test_printable_escapes_every_control_and_bidi_override() -> None:
    shown = printable(EVIL)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or 0x202A <= ord(c) <= 0x202E for c in shown)
    assert shown.startswith("\\x1b]0;pwned\\x07") and "\\u202e" in shown and shown.endswith("\\x0d\\x0a")
    assert printable("plain text, ünïcödé") == "plain text, ünïcödé"


def test_a_verdict_with_hostile_text_prints_it_as_text() -> None:
    verdict = Verdict(run_id="r1", status="ERROR", reason=f"fault could not be applied: {EVIL}",
                      assertions=(), summary={}, completeness={}, generator={
                          "late_starts": 0, "late_start_rate": 0.0, "late_threshold_ms": 10, "saturated": False},
                      time={}, journey_failures={f"step file: {EVIL}": 3})
    out = io.StringIO()
    console = Console(file=out, width=300, color_system=None, force_terminal=False)
    for part in verdict_table(verdict):
        console.print(part)
    text = out.getvalue()
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "[bold red]shouting[/]" in text  # shown as written, not applied as markup
