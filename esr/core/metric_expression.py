"""A Python metric function, as the chapter writes one, turned into the expression the server
judges with: `return metrics["cloud_cost"] / metrics["claims_processed"]` travels as
`cloud_cost / claims_processed`.

The function's source is read and its syntax tree translated; it is never run, and nothing but
a single `return` of arithmetic over `metrics["name"]` values and numbers is accepted, so what
the server computes is exactly what the function says. Anything else is `MetricNotPortable`.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

from esr.core.errors import EsrError

__all__ = ["MetricNotPortable", "metric_expression"]

_OPERATORS: dict[type[ast.operator], str] = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
CAN_TRAVEL = ('a function whose body is a single `return` of arithmetic (+ - * / and parentheses) over '
              'metrics["name"] values and numbers')


class MetricNotPortable(EsrError):
    """A Python metric function that cannot be sent to the server as an expression."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"metric {name!r} cannot travel to the ESR server ({why}). What can travel: {CAN_TRAVEL}. "
                         "Otherwise give it as an expression in derived_metrics, or run the scenario with "
                         "`esr run`, where Python functions run as they are")


def metric_expression(name: str, function: Callable[..., Any]) -> str:
    """The expression `function` computes (see the module docstring)."""
    try:
        source = textwrap.dedent(inspect.getsource(function))
    except (OSError, TypeError):
        raise MetricNotPortable(name, "its source cannot be read") from None
    tree = ast.parse(source)
    defined = tree.body[0] if len(tree.body) == 1 else None
    if not isinstance(defined, ast.FunctionDef):
        raise MetricNotPortable(name, "it is not a plain `def` function (a lambda or a callable object)")
    if len(defined.args.args) != 1 or defined.args.vararg or defined.args.kwarg or defined.args.kwonlyargs:
        raise MetricNotPortable(name, "it must take exactly one argument, the metrics mapping")
    body = [node for node in defined.body if not _is_docstring(node)]
    if len(body) != 1 or not isinstance(body[0], ast.Return) or body[0].value is None:
        raise MetricNotPortable(name, "its body is more than a single `return`")
    text = _expression(name, body[0].value, defined.args.args[0].arg)
    return text[1:-1] if isinstance(body[0].value, ast.BinOp) else text  # no parentheses around the whole


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _expression(name: str, node: ast.expr, mapping: str) -> str:
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return f"({_expression(name, node.left, mapping)} {_OPERATORS[type(node.op)]} " \
               f"{_expression(name, node.right, mapping)})"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign = "-" if isinstance(node.op, ast.USub) else ""
        return f"{sign}{_expression(name, node.operand, mapping)}" if sign else _expression(name, node.operand, mapping)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return repr(node.value)
    if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == mapping
            and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
        key = node.slice.value
        if not key.isidentifier():
            raise MetricNotPortable(name, f"{mapping}[{key!r}] is not a metric name (letters, digits and _)")
        return key
    raise MetricNotPortable(name, f"`{ast.unparse(node)}` is not arithmetic over {mapping}[\"name\"] values")
