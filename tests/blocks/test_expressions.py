"""The safe expression language: known answers, laziness and refused (hostile) input."""

from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr

from blocks import expressions
from blocks.expressions import FUNCTIONS, MAX_LENGTH, MAX_NODES, ExpressionError, evaluate, parse


@pytest.fixture
def variables() -> dict[str, xr.DataArray]:
    return {"uo": xr.DataArray(np.array([3.0, -1.0, np.nan]), dims="x"),
            "vo": xr.DataArray(np.array([4.0, 0.0, 1.0]), dims="x")}


@pytest.mark.parametrize(("text", "expected"), [
    ("sqrt(uo**2 + vo**2)", [5.0, 1.0, np.nan]),
    ("uo * 2 - vo / 4 + 1", [6.0, -1.0, np.nan]),
    ("-uo % 2", [1.0, 1.0, np.nan]),
    ("+uo", [3.0, -1.0, np.nan]),
    ("abs(uo)", [3.0, 1.0, np.nan]),
    ("exp(vo * 0)", [1.0, 1.0, 1.0]),
    ("log(exp(vo))", [4.0, 0.0, 1.0]),
    ("log10(vo * 25)", [2.0, -np.inf, np.log10(25)]),
    ("sin(0 * vo) + cos(0 * vo) + tan(0 * vo)", [1.0, 1.0, 1.0]),
    ("arctan2(vo, uo)", [np.arctan2(4, 3), np.pi, np.nan]),
    ("minimum(uo, vo) + maximum(uo, vo)", [7.0, -1.0, np.nan]),
    ("clip(uo, 0, 2)", [2.0, 0.0, np.nan]),
    ("where(uo > 0, uo, 0)", [3.0, 0.0, 0.0]),
    ("where(uo > 0 and vo > 3, 1, 0)", [1.0, 0.0, 0.0]),
    ("where(uo < 0 or vo == 1, 1, 0)", [0.0, 1.0, 1.0]),
    ("where(not (uo >= 0), 1, 0)", [0.0, 1.0, 1.0]),
    ("where(0 <= vo < 4, 1, 0)", [0.0, 1.0, 1.0]),
    ("where(vo != 0, 1, 0)", [1.0, 0.0, 1.0]),
    ("uo <= 3", [True, True, False]),
    ("2 ** 3 * vo", [32.0, 0.0, 8.0]),
    ("9 ** 9 ** 9 + vo", [np.inf, np.inf, np.inf]),  # floats overflow instead of computing a huge integer
])
def test_known_answers(variables: dict, text: str, expected: list) -> None:
    result = evaluate(text, variables)
    assert isinstance(result, xr.DataArray)
    np.testing.assert_allclose(np.asarray(result.values, dtype=float), np.asarray(expected, dtype=float))


def test_parse_returns_the_names_used() -> None:
    _, used = parse("sqrt(uo**2 + vo**2) + uo", ["uo", "vo", "so"])
    assert used == ["uo", "vo"]


def test_evaluation_stays_lazy_with_dask(variables: dict) -> None:
    lazy = {name: value.chunk({"x": 1}) for name, value in variables.items()}
    result = evaluate("where(uo > 0, sqrt(uo**2 + vo**2), clip(vo, 0, 1))", lazy)
    assert result.chunks is not None
    np.testing.assert_allclose(result.values, [5.0, 0.0, 1.0])


@pytest.mark.parametrize(("text", "message"), [
    ("__import__('os')", "expression: function '__import__' at position 1 is not allowed; allowed functions: "
                         + ", ".join(FUNCTIONS)),
    ("().__class__", "expression: attribute access '.__class__' at position 3 is not allowed"),
    ("uo.values", "expression: attribute access '.values' at position 3 is not allowed"),
    ("uo.values()", "expression: attribute access '.values' at position 3 is not allowed"),
    ("1 + uo.__class__.__mro__", "expression: attribute access '.__mro__' at position 17 is not allowed"),
    ("open('x')", "expression: function 'open' at position 1 is not allowed"),
    ("eval('1')", "expression: function 'eval' at position 1 is not allowed"),
    ("exec('1')", "expression: function 'exec' at position 1 is not allowed"),
    ("getattr(uo, 'values')", "expression: function 'getattr' at position 1 is not allowed"),
    ("sqrt(uo)(1)", "expression: call of 'sqrt(uo)' at position 1 is not allowed"),
    ("uo[0]", "expression: indexing 'uo[0]' at position 1 is not allowed"),
    ("uo + [1, 2]", "expression: list '[1, 2]' at position 6 is not allowed"),
    ("(uo, vo)", "expression: tuple '(uo, vo)' at position 1 is not allowed"),
    ("{'a': uo}", "expression: dictionary \"{'a': uo}\" at position 1 is not allowed"),
    ("lambda: uo", "expression: lambda 'lambda: uo' at position 1 is not allowed"),
    ("[x for x in uo]", "expression: comprehension '[x for x in uo]' at position 1 is not allowed"),
    ("uo if vo else 1", "expression: if-else 'uo if vo else 1' at position 1 is not allowed"),
    ("(y := uo)", "expression: assignment 'y := uo' at position 2 is not allowed"),
    ("f'{uo}'", "expression: f-string \"f'{uo}'\" at position 1 is not allowed"),
    ("uo + 'text'",
     "expression: constant 'text' (only numbers may be constants) at position 6 is not allowed"),
    ("uo * True", "expression: constant True (only numbers may be constants) at position 6 is not allowed"),
    ("uo + 1j", "expression: constant 1j (only numbers may be constants) at position 6 is not allowed"),
    ("uo // 2", "expression: operator '//' at position 4 is not allowed"),
    ("uo & vo", "expression: operator '&' at position 4 is not allowed"),
    ("~uo", "expression: operator '~' at position 1 is not allowed"),
    ("uo is vo", "expression: operator 'is' at position 4 is not allowed"),
    ("uo in vo", "expression: operator 'in' at position 4 is not allowed"),
    ("sqrt(x=uo)", "expression: keyword argument 'x=uo' at position 6 is not allowed"),
    ("sqrt(*uo)", "expression: star argument '*uo' at position 6 is not allowed"),
    ("sqrt(uo, vo)", "expression: sqrt() at position 1 takes 1 argument, got 2 (square root)"),
    ("where(uo > 0, 1)", "expression: where() at position 1 takes 3 arguments, got 2"),
    ("sqrt", "expression: unknown name 'sqrt' at position 1 (sqrt is a function: write sqrt(...)); "
             "the dataset has: uo, vo"),
    ("temp + 1", "expression: unknown name 'temp' at position 1; the dataset has: uo, vo"),
    ("__builtins__", "expression: unknown name '__builtins__' at position 1"),
    ("uo +", "expression: invalid syntax at the end"),
    ("uo = 1", "expression: invalid syntax at '=' (position 4)"),
    ("uo; import os", "expression: invalid syntax at ';' (position 3)"),
    ("sqrt(uo", "expression: invalid syntax at '(' (position 5): '(' was never closed"),
    ("", "expression: is empty"),
    ("   ", "expression: is empty"),
    ("x" * 10_000, f"expression: is 10000 characters long; at most {MAX_LENGTH} are allowed"),
    ("uo+" * 300 + "uo", f"expression: has 1203 parts; at most {MAX_NODES} are allowed"),
    ("-" * 900 + "uo", f"expression: has 1803 parts; at most {MAX_NODES} are allowed"),
    ("(" * 300 + "uo" + ")" * 300, "expression: invalid syntax"),
], ids=lambda value: repr(value[:24]))
def test_refused_expressions_name_the_token_and_position(variables: dict, text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=re.escape(message)):
        evaluate(text, variables)


def test_refusal_happens_before_any_evaluation(variables: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    evaluated = []
    monkeypatch.setattr(expressions, "_evaluate", lambda *args: evaluated.append(args))
    with pytest.raises(ExpressionError):
        evaluate("sqrt(uo) + uo.values", variables)
    assert evaluated == []
    evaluate("sqrt(uo)", variables)
    assert len(evaluated) == 1


def test_huge_constants_and_mismatched_arrays(variables: dict) -> None:
    digits = "9" * 400
    with pytest.raises(ExpressionError, match="expression: a number is too large"):
        evaluate(f"uo + {digits}", variables)
    with pytest.raises(ExpressionError, match="expression: cannot be computed"):
        evaluate("uo + vo", {"uo": np.ones(2), "vo": np.ones(3)})


def test_errors_are_value_errors() -> None:
    assert issubclass(ExpressionError, ValueError)
