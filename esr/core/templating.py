"""Values that journeys compute from responses and per-user data, without evaluating code.

* `Template`: strings with `{{ user.ssn }}`, `{{ data.wages }}`, `{{ vars.claim_id }}` or
  `{{ run.id }}` placeholders; only dotted look-ups, nothing is executed.
* `JsonPath`: a JSONPath (`$.claim.id`) that extracts a value from a JSON response.
* `Condition`: `$.status == 'paid'`, `$.status in ['paid', 'denied']`, `$.n >= 3`, joined by
  `and` / `or`, parsed by a small grammar.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.parser import parse as _jsonpath_parse
from lark import Lark, Token, Transformer, UnexpectedInput
from lark.exceptions import VisitError

from esr.core.grammar import error_column

__all__ = ["NAMESPACES", "Condition", "JsonPath", "Template"]

NAMESPACES = ("user", "data", "vars", "run")
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


MAX_PLACEHOLDERS = 100  # in one template string


@dataclass(frozen=True, slots=True)
class Template:
    """A string with `{{ namespace.name }}` placeholders, checked when compiled."""

    text: str
    names: tuple[str, ...]

    @classmethod
    @cache
    def compile(cls, text: str, namespaces: tuple[str, ...] = NAMESPACES) -> Template:
        """`namespaces` are the allowed first names (a fault action's are run, target, fault)."""
        if text.count("{{") > MAX_PLACEHOLDERS:
            raise ValueError(f"{text.count('{{')} placeholders in one string; at most {MAX_PLACEHOLDERS}")
        names = []
        for match in _PLACEHOLDER.finditer(text):
            name = match.group(1)
            if not _NAME.match(name) or name.split(".")[0] not in namespaces:
                raise ValueError(
                    f"placeholder {{{{ {name} }}}} at column {match.start() + 1} must be a dotted"
                    f" name starting with one of {', '.join(namespaces)} (e.g. {{{{ {namespaces[0]}.id }}}})"
                )
            names.append(name)
        if "{{" in _PLACEHOLDER.sub("", text):
            raise ValueError(f"unclosed '{{{{' in {text!r}: write placeholders as {{{{ vars.id }}}}")
        return cls(text, tuple(names))

    @property
    def is_static(self) -> bool:
        return not self.names

    def render(self, context: Mapping[str, Any]) -> Any:
        """The rendered value; a template that is exactly one placeholder keeps the value's type."""
        if not self.names:
            return self.text
        whole = _PLACEHOLDER.fullmatch(self.text.strip())
        if whole:
            return _lookup(context, whole.group(1))
        return _PLACEHOLDER.sub(lambda m: str(_lookup(context, m.group(1))), self.text)

    def label(self) -> str:
        """The template with placeholders shown as `{name}`: a low-cardinality endpoint label."""
        return _PLACEHOLDER.sub(lambda m: "{" + m.group(1).split(".")[-1] + "}", self.text)


def _lookup(context: Mapping[str, Any], name: str) -> Any:
    value: Any = context
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(f"{{{{ {name} }}}} has no value for this user (no {part!r})")
        value = value[part]
    return value


def render_value(value: Any, context: Mapping[str, Any], namespaces: tuple[str, ...] = NAMESPACES) -> Any:
    """Render every template string inside a JSON-like value (dicts, lists, strings)."""
    if isinstance(value, str):
        return Template.compile(value, namespaces).render(context) if "{{" in value else value
    if isinstance(value, dict):
        return {k: render_value(v, context, namespaces) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context, namespaces) for v in value]
    return value


def template_names(value: Any, namespaces: tuple[str, ...] = NAMESPACES) -> list[str]:
    """Every placeholder name inside a JSON-like value; raises ValueError on a bad one."""
    if isinstance(value, str):
        return list(Template.compile(value, namespaces).names)
    if isinstance(value, dict):
        return [n for v in value.values() for n in template_names(v, namespaces)]
    if isinstance(value, list):
        return [n for v in value for n in template_names(v, namespaces)]
    return []


_MISSING = object()


@dataclass(frozen=True, slots=True)
class JsonPath:
    """A compiled JSONPath; `find` returns the first match or `default`."""

    text: str
    _compiled: Any

    @classmethod
    @cache
    def compile(cls, text: str) -> JsonPath:
        if not text.startswith("$"):
            raise ValueError(f"a JSON path starts with '$' (e.g. '$.id'), got {text!r}")
        try:
            return cls(text, _jsonpath_parse(text))
        except (JsonPathLexerError, JsonPathParserError, Exception) as exc:  # noqa: BLE001
            raise ValueError(f"invalid JSON path {text!r}: {exc}") from None

    def find(self, document: Any, default: Any = None) -> Any:
        matches = self._compiled.find(document)
        return matches[0].value if matches else default


_CONDITION_GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr ("or" and_expr)*  -> any_of
?and_expr: comparison ("and" comparison)* -> all_of
?comparison: PATH COMPARE literal   -> compare
           | PATH "in" list          -> member
           | PATH "not" "in" list    -> not_member
           | "(" or_expr ")"
list: "[" [literal ("," literal)*] "]"
?literal: STRING -> string
        | NUMBER -> number
        | "true" -> true
        | "false" -> false
        | "null" -> null
PATH: /\$[^\s=!<>\]\[,()]*(\[[^\]]*\][^\s=!<>\]\[,()]*)*/
COMPARE: "==" | "!=" | "<=" | ">=" | "<" | ">"
STRING: /'[^']*'/ | /"[^"]*"/
NUMBER: /-?\d+(\.\d+)?([eE][-+]?\d+)?/
%import common.WS
%ignore WS
"""


@cache
def _condition_parser() -> Lark:
    return Lark(_CONDITION_GRAMMAR, parser="lalr", maybe_placeholders=False)


_Items = list[Any]  # a rule's children (the builder's method `list` hides the builtin inside it)


class _ConditionBuilder(Transformer[Token, Any]):
    def string(self, items: list[Token]) -> str:
        return str(items[0])[1:-1]

    def number(self, items: list[Token]) -> float:
        return float(items[0])

    def true(self, _: _Items) -> bool:
        return True

    def false(self, _: _Items) -> bool:
        return False

    def null(self, _: _Items) -> None:
        return None

    def list(self, items: _Items) -> tuple[Any, ...]:
        return tuple(i for i in items if i is not _MISSING)

    def compare(self, items: _Items) -> tuple[Any, ...]:
        return ("cmp", JsonPath.compile(str(items[0])), str(items[1]), items[2])

    def member(self, items: _Items) -> tuple[Any, ...]:
        return ("in", JsonPath.compile(str(items[0])), items[1])

    def not_member(self, items: _Items) -> tuple[Any, ...]:
        return ("not in", JsonPath.compile(str(items[0])), items[1])

    def any_of(self, items: _Items) -> tuple[Any, ...]:
        return ("or", tuple(items))

    def all_of(self, items: _Items) -> tuple[Any, ...]:
        return ("and", tuple(items))


def _same(a: Any, b: Any) -> bool:
    """JSON equality: true and 1 are different values (RFC 9535)."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": _same,
    "!=": lambda a, b: not _same(a, b),
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


@dataclass(frozen=True, slots=True)
class Condition:
    """A test on a JSON response, e.g. `$.status in ['paid', 'denied']`."""

    text: str
    _tree: tuple[Any, ...]

    @classmethod
    @cache
    def compile(cls, text: str) -> Condition:
        try:
            tree = _ConditionBuilder().transform(_condition_parser().parse(text))
        except UnexpectedInput as exc:
            raise ValueError(
                f"cannot parse condition {text!r} at column {error_column(exc, text)}: expected a form like"
                " \"$.status == 'paid'\" or \"$.status in ['paid', 'denied']\""
            ) from None
        except VisitError as exc:  # a bad JSON path inside the condition (lark wraps the builder's ValueError)
            cause = exc.orig_exc if isinstance(exc.orig_exc, ValueError) else exc
            raise ValueError(f"invalid condition {text!r}: {cause}") from None
        return cls(text, tree)

    def holds(self, document: Any) -> bool:
        return _evaluate(self._tree, document)


def _evaluate(node: tuple[Any, ...], document: Any) -> bool:
    kind: str = node[0]
    if kind == "or":
        return any(_evaluate(n, document) for n in node[1])
    if kind == "and":
        return all(_evaluate(n, document) for n in node[1])
    value = node[1].find(document, _MISSING)
    if value is _MISSING:  # a missing value equals nothing: only the negations hold
        return kind == "not in" or (kind == "cmp" and node[2] == "!=")
    if kind == "in":
        return any(_same(value, item) for item in node[2])
    if kind == "not in":
        return not any(_same(value, item) for item in node[2])
    try:
        return bool(_OPS[node[2]](value, node[3]))
    except TypeError:  # e.g. "paid" < 3: a mismatch, not a crash
        return False
