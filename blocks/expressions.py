"""A small, safe arithmetic language over dataset variables, e.g. ``sqrt(uo**2 + vo**2)``.

The text is parsed with :mod:`ast` (parsing only: user text is never passed to ``eval``, ``exec`` or
``compile``) and every node is checked against a whitelist before anything is evaluated:

* names of the variables given (dataset variables and coordinates) and numbers;
* ``+ - * / ** %``, unary ``-`` and ``+``, comparisons ``< <= > >= == !=`` (also chained);
* ``and``, ``or``, ``not`` (element-wise, via numpy), parentheses;
* calls of :data:`FUNCTIONS` by name, with positional arguments only.

Attribute access, subscripts, strings, keyword arguments, lambdas, comprehensions and calls of
anything else are refused with an :class:`ExpressionError` naming the offending text and its position
(1-based character). Text longer than :data:`MAX_LENGTH` or with more than :data:`MAX_NODES` syntax
nodes is refused before evaluation. Evaluation uses numpy ufuncs and :func:`xarray.where`, so dask
backed variables stay lazy.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

MAX_LENGTH = 1000
"""Longest expression accepted, in characters."""

MAX_NODES = 200
"""Most syntax-tree nodes accepted (a name, a number, an operator each count as one or two)."""


def _clip(value: Any, lower: Any, upper: Any) -> Any:
    return np.minimum(np.maximum(value, lower), upper)


def _where(condition: Any, if_true: Any, if_false: Any) -> Any:
    return xr.where(condition, if_true, if_false, keep_attrs=False)


@dataclass(frozen=True)
class Function:
    """A function expressions may call: its implementation, argument count and a description."""

    implementation: Callable[..., Any]
    arguments: int
    description: str


FUNCTIONS: dict[str, Function] = {
    "sqrt": Function(np.sqrt, 1, "square root"),
    "abs": Function(np.abs, 1, "absolute value"),
    "exp": Function(np.exp, 1, "e to the power x"),
    "log": Function(np.log, 1, "natural logarithm"),
    "log10": Function(np.log10, 1, "base-10 logarithm"),
    "sin": Function(np.sin, 1, "sine (radians)"),
    "cos": Function(np.cos, 1, "cosine (radians)"),
    "tan": Function(np.tan, 1, "tangent (radians)"),
    "arctan2": Function(np.arctan2, 2, "arctan2(y, x): angle of the vector (x, y) in radians"),
    "where": Function(_where, 3, "where(condition, a, b): a where the condition holds, b elsewhere"),
    "minimum": Function(np.minimum, 2, "element-wise smaller of two values"),
    "maximum": Function(np.maximum, 2, "element-wise larger of two values"),
    "clip": Function(_clip, 3, "clip(x, low, high): x limited to the range low to high"),
}
"""The only functions an expression may call."""

BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.true_divide,
    ast.Pow: np.power, ast.Mod: np.mod,
}
UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: np.negative, ast.UAdd: np.positive, ast.Not: np.logical_not,
}
COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Lt: np.less, ast.LtE: np.less_equal, ast.Gt: np.greater, ast.GtE: np.greater_equal,
    ast.Eq: np.equal, ast.NotEq: np.not_equal,
}
BOOLEAN: dict[type[ast.boolop], Callable[[Any, Any], Any]] = {ast.And: np.logical_and, ast.Or: np.logical_or}
OPERATOR_TEXT = {
    ast.FloorDiv: "//", ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
    ast.LShift: "<<", ast.RShift: ">>", ast.Invert: "~", ast.Is: "is", ast.IsNot: "is not",
    ast.In: "in", ast.NotIn: "not in",
}
NODE_WORDS = {
    ast.Attribute: "attribute access", ast.Subscript: "indexing", ast.Lambda: "lambda",
    ast.ListComp: "comprehension", ast.SetComp: "comprehension", ast.DictComp: "comprehension",
    ast.GeneratorExp: "comprehension", ast.List: "list", ast.Tuple: "tuple", ast.Dict: "dictionary",
    ast.Set: "set", ast.IfExp: "if-else", ast.NamedExpr: "assignment", ast.Starred: "star argument",
    ast.JoinedStr: "f-string", ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield",
    ast.Slice: "slice",
}


class ExpressionError(ValueError):
    """The expression is not allowed or cannot be evaluated; the message names what and where."""


def allowed_summary() -> str:
    """One sentence listing what an expression may contain, for error messages and help texts."""
    return ("allowed are variable names, numbers, + - * / ** %, comparisons, and/or/not, parentheses "
            "and the functions " + ", ".join(FUNCTIONS))


class _Checker:
    """Walks a parsed expression and raises ExpressionError at the first thing not whitelisted."""

    def __init__(self, text: str, names: set[str]) -> None:
        self.text = text
        self.names = names
        self.used: list[str] = []

    def fail(self, node: ast.AST, what: str, column: int | None = None) -> None:
        offset = getattr(node, "col_offset", 0) if column is None else column
        raise ExpressionError(
            f"expression: {what} at position {offset + 1} is not allowed; {allowed_summary()}"
        )

    def segment(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.text, node) or type(node).__name__

    def check(self, node: ast.AST) -> None:
        if isinstance(node, ast.Expression):
            self.check(node.body)
        elif isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.fail(node, f"constant {self.segment(node)} (only numbers may be constants)")
        elif isinstance(node, ast.Name):
            if node.id not in self.names:
                known = ", ".join(sorted(self.names)) or "none"
                hint = f" ({node.id} is a function: write {node.id}(...))" if node.id in FUNCTIONS else ""
                raise ExpressionError(
                    f"expression: unknown name {node.id!r} at position {node.col_offset + 1}{hint}; "
                    f"the dataset has: {known}"
                )
            self.used.append(node.id)
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in BINARY:
                self.operator(node, node.op, node.left)
            self.check(node.left)
            self.check(node.right)
        elif isinstance(node, ast.UnaryOp):
            if type(node.op) not in UNARY:
                self.operator(node, node.op, None)
            self.check(node.operand)
        elif isinstance(node, ast.BoolOp):
            for value in node.values:
                self.check(value)
        elif isinstance(node, ast.Compare):
            for operator, right in zip(node.ops, node.comparators, strict=True):
                if type(operator) not in COMPARE:
                    self.operator(node, operator, None)
                self.check(right)
            self.check(node.left)
        elif isinstance(node, ast.Call):
            self.call(node)
        elif isinstance(node, ast.Attribute):
            end = getattr(node, "end_col_offset", None)
            column = end - len(node.attr) - 1 if end is not None else None
            self.fail(node, f"attribute access '.{node.attr}'", column)
        else:
            word = NODE_WORDS.get(type(node), type(node).__name__)
            self.fail(node, f"{word} {self.segment(node)!r}")

    def operator(self, node: ast.AST, operator: Any, left: ast.AST | None) -> None:
        symbol = OPERATOR_TEXT.get(type(operator), type(operator).__name__)
        column = None
        position = self.text.find(symbol, getattr(left, "end_col_offset", node.col_offset)) if symbol else -1
        if position >= 0:
            column = position
        self.fail(node, f"operator {symbol!r}", column)

    def call(self, node: ast.Call) -> None:
        if not isinstance(node.func, ast.Name):
            if isinstance(node.func, ast.Attribute):
                self.check(node.func)  # reports the attribute access
            self.fail(node, f"call of {self.segment(node.func)!r}")
            return
        name = node.func.id
        function = FUNCTIONS.get(name)
        if function is None:
            raise ExpressionError(
                f"expression: function {name!r} at position {node.col_offset + 1} is not allowed; "
                f"allowed functions: {', '.join(FUNCTIONS)}"
            )
        if node.keywords:
            keyword = node.keywords[0]
            self.fail(keyword, f"keyword argument {self.segment(keyword)!r}")
        for argument in node.args:
            if isinstance(argument, ast.Starred):
                self.fail(argument, f"star argument {self.segment(argument)!r}")
        if len(node.args) != function.arguments:
            raise ExpressionError(
                f"expression: {name}() at position {node.col_offset + 1} takes {function.arguments} "
                f"argument{'s' if function.arguments > 1 else ''}, got {len(node.args)} "
                f"({function.description})"
            )
        for argument in node.args:
            self.check(argument)


def parse(text: str, names: Iterable[str]) -> tuple[ast.Expression, list[str]]:
    """Parse and check ``text``; return the tree and the variable names it uses (in order, unique).

    Raises :class:`ExpressionError` when the text is empty, too long, not valid syntax, too complex,
    or uses anything outside the whitelist (see the module documentation).
    """
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("expression: is empty; write a formula such as sqrt(uo**2 + vo**2)")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression: is {len(text)} characters long; at most {MAX_LENGTH} are allowed")
    if "\n" in text or "\r" in text:
        text = " ".join(text.splitlines())
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        stripped = text.strip()
        offset = error.offset or 0
        if 0 < offset <= len(stripped):
            end = error.end_offset if error.end_offset and error.end_offset > offset else offset + 1
            where = f" at {stripped[offset - 1:end - 1]!r} (position {offset})"
        else:
            where = " at the end"
        raise ExpressionError(f"expression: invalid syntax{where}: {error.msg}") from None
    except (ValueError, RecursionError, MemoryError) as error:
        raise ExpressionError(f"expression: cannot be read: {type(error).__name__}") from None
    count = sum(1 for _ in ast.walk(tree))
    if count > MAX_NODES:
        raise ExpressionError(f"expression: has {count} parts; at most {MAX_NODES} are allowed")
    checker = _Checker(text.strip(), set(map(str, names)))
    checker.check(tree)
    return tree, list(dict.fromkeys(checker.used))


def _evaluate(node: ast.AST, variables: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, variables)
    if isinstance(node, ast.Constant):
        return float(node.value)  # a "weak" Python float: float32 data stay float32
    if isinstance(node, ast.Name):
        return variables[node.id]
    if isinstance(node, ast.BinOp):
        return BINARY[type(node.op)](_evaluate(node.left, variables), _evaluate(node.right, variables))
    if isinstance(node, ast.UnaryOp):
        return UNARY[type(node.op)](_evaluate(node.operand, variables))
    if isinstance(node, ast.BoolOp):
        combine = BOOLEAN[type(node.op)]
        result = _evaluate(node.values[0], variables)
        for value in node.values[1:]:
            result = combine(result, _evaluate(value, variables))
        return result
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, variables)
        result = None
        for operator, comparator in zip(node.ops, node.comparators, strict=True):
            right = _evaluate(comparator, variables)
            part = COMPARE[type(operator)](left, right)
            result = part if result is None else np.logical_and(result, part)
            left = right
        return result
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        function = FUNCTIONS[node.func.id]
        return function.implementation(*(_evaluate(argument, variables) for argument in node.args))
    raise ExpressionError(f"expression: cannot evaluate {type(node).__name__}")  # unreachable after parse


def evaluate(text: str, variables: Mapping[str, Any]) -> Any:
    """Evaluate ``text`` over ``variables`` (name -> xarray.DataArray, numpy array or number).

    Numbers become floats and every operation is a numpy ufunc, so ``9**9**9`` overflows to infinity
    instead of hanging. Raises
    :class:`ExpressionError` for anything :func:`parse` refuses and for overflowing constants or
    arrays that cannot be combined (e.g. mismatched shapes).
    """
    tree, _ = parse(text, variables)
    try:
        with np.errstate(all="ignore"):
            return _evaluate(tree, variables)
    except OverflowError as error:
        raise ExpressionError(f"expression: a number is too large: {error}") from None
    except (ValueError, TypeError) as error:
        raise ExpressionError(f"expression: cannot be computed: {error}") from None
