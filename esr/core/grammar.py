"""Shared helpers for the small Lark grammars (assertions, conditions, faults)."""

from __future__ import annotations

from lark import Token, UnexpectedInput

__all__ = ["error_column", "expected_tokens", "token_column"]

_TOKEN_NAMES = {
    "AT": "'@'", "LPAR": "'('", "RPAR": "')'", "COMMA": "','", "PLUS": "'+'", "MINUS": "'-'",
    "STAR": "'*'", "SLASH": "'/'", "EQUAL": "'='", "LSQB": "'['", "RSQB": "']'",
    "COMPARE": "a comparison (<, <=, >, >=, ==, !=)", "NAME": "a name", "NUMBER": "a number",
    "DURATION": "a duration such as 1h", "STRING": "a quoted string", "CLOCK": "a time such as 8:30",
    "INT": "a whole number", "$END": "the end", "DOTDOT": "'..'", "ADD": "'+' or '-'",
    "MUL": "'*' or '/'", "PATH": "a JSON path such as $.status",
}


def token_column(token: Token) -> int:
    """1-based column of a token from the parser (its lexer sets every token's column)."""
    return token.column if token.column is not None else 1


def expected_tokens(exc: UnexpectedInput) -> str:
    """What the parser wanted at the error, in words rather than token names."""
    names = getattr(exc, "expected", None) or getattr(exc, "allowed", None) or set()
    words = sorted({_TOKEN_NAMES.get(n, f"'{n.lower()}'" if n.isupper() else n) for n in names})
    return ", ".join(words) or "the end"


def error_column(exc: UnexpectedInput, text: str) -> int:
    """1-based column of the problem; just after the text when the input ended too early."""
    token = getattr(exc, "token", None)
    if token is not None and getattr(token, "type", None) == "$END":
        return len(text) + 1
    column = getattr(exc, "column", -1)
    return column if isinstance(column, int) and column > 0 else len(text) + 1
