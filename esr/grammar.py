"""Shared helpers for the small Lark grammars (assertions, conditions, faults)."""

from __future__ import annotations

from lark import UnexpectedInput

__all__ = ["expected_tokens"]

_TOKEN_NAMES = {
    "AT": "'@'", "LPAR": "'('", "RPAR": "')'", "COMMA": "','", "PLUS": "'+'", "MINUS": "'-'",
    "STAR": "'*'", "SLASH": "'/'", "EQUAL": "'='", "LSQB": "'['", "RSQB": "']'",
    "COMPARE": "a comparison (<, <=, >, >=, ==, !=)", "NAME": "a name", "NUMBER": "a number",
    "DURATION": "a duration such as 1h", "STRING": "a quoted string", "CLOCK": "a time such as 8:30",
    "INT": "a whole number", "$END": "the end", "DOTDOT": "'..'",
}


def expected_tokens(exc: UnexpectedInput) -> str:
    """What the parser wanted at the error, in words rather than token names."""
    names = getattr(exc, "expected", None) or getattr(exc, "allowed", None) or set()
    words = sorted({_TOKEN_NAMES.get(n, f"'{n.lower()}'" if n.isupper() else n) for n in names})
    return ", ".join(words) or "the end"
