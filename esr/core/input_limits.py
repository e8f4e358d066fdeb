"""Size and depth limits on what users send, checked before anything parses it recursively.

A scenario may arrive over the API from anyone holding the launch token, so 1,000 levels of
nesting in a step's JSON body, or an assertion with hundreds of terms, must be a clear error
that names the field and the limit, not a RecursionError (a 500, or a traceback).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MAX_ASSERTION_CHARS", "MAX_ASSERTION_TERMS", "MAX_NESTING", "MAX_PARENTHESES",
           "assertion_size_error", "nesting_error", "text_nesting_error"]

MAX_NESTING = 32  # objects and lists inside each other, anywhere in a scenario
MAX_ASSERTION_CHARS = 1000
MAX_ASSERTION_TERMS = 64  # operands of + - * / in one assertion
MAX_PARENTHESES = 16  # parentheses inside each other in one assertion

_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def text_nesting_error(text: str, limit: int = MAX_NESTING) -> str | None:
    """Where a JSON text nests deeper than `limit` ("line L, column C: ..."), found without
    parsing it (strings are skipped), or None."""
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                line = text.count("\n", 0, match.start()) + 1
                column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
                return (f"line {line}, column {column}: nested more than {limit} levels deep "
                        "(objects and lists inside each other)")
        elif token in "]}":
            depth -= 1
    return None


def nesting_error(data: Any, limit: int = MAX_NESTING) -> tuple[str, str] | None:
    """(path, message) for the first place nested deeper than `limit`, or None. Iterative: any
    depth is safe to check."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, dict):
            items = [(f"{path}.{k}" if path else str(k), v) for k, v in value.items()]
        elif isinstance(value, (list, tuple)):
            items = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
        else:
            continue
        if depth >= limit:
            return path or "<scenario>", f"nested more than {limit} levels deep (objects and lists inside each other)"
        stack.extend((v, p, depth + 1) for p, v in reversed(items))
    return None


def assertion_size_error(text: str) -> str | None:
    """Why an assertion is too big to parse, or None."""
    terms = 1 + sum(text.count(op) for op in "+-*/")
    if terms > MAX_ASSERTION_TERMS:
        return f"about {terms} terms; an assertion has at most {MAX_ASSERTION_TERMS} (split it into several)"
    depth = deepest = 0
    for char in text:
        if char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")":
            depth -= 1
    if deepest > MAX_PARENTHESES:
        return f"parentheses {deepest} deep; at most {MAX_PARENTHESES}"
    if len(text) > MAX_ASSERTION_CHARS:
        return f"{len(text)} characters; an assertion has at most {MAX_ASSERTION_CHARS}"
    return None
