"""The agent example's tools: passage search over `corpus.jsonl` and a safe calculator.

`program.lmp` names them as `tools:search` and `tools:calculate`; lmc imports this module from
the program's folder. Both raise `ValueError`, with a message meant for the model, when a call
cannot be answered.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import threading
from collections.abc import Callable
from pathlib import Path

from lmc.retrieval.index import Retriever, open_retriever

CORPUS = Path(__file__).resolve().parent / "corpus.jsonl"

# --- search ---------------------------------------------------------------------------------


class _Library:
    """The BM25 index over the corpus's `text` field (lmc's own, cached on disk by content) and
    every passage as "Title | text", by id."""

    def __init__(self, path: Path) -> None:
        self.retriever: Retriever = open_retriever(path, "bm25", "text")
        with path.open(encoding="utf-8") as lines:
            records = [json.loads(line) for line in lines if line.strip()]
        self.passages = {r["id"]: f"{r['title']} | {r['text']}" for r in records}


_library: _Library | None = None
_opening = threading.Lock()


def _open_library() -> _Library:
    """The library, built on the first search of the process (by one thread; the rest wait)."""
    global _library
    if _library is None:
        with _opening:
            if _library is None:
                _library = _Library(CORPUS)
    return _library


def search(query: str, k: int = 3) -> list[str]:
    """The `k` passages that best match `query` by BM25, best first, each as "Title | text"."""
    if k < 1:
        raise ValueError(f"search: k must be at least 1; found {k}")
    library = _open_library()
    return [library.passages[i] for i in library.retriever.search_ids(query, k)]


# --- calculate ------------------------------------------------------------------------------

MAX_LENGTH = 500  # characters of an expression; this also bounds how deeply it nests
MAX_EXPONENT = 1000  # |b| in a ** b
MAX_DIGITS = 100
MAX_MAGNITUDE = 10.0**MAX_DIGITS  # |x| of every number read or computed

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number | complex]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
_ALLOWED = "numbers, + - * / // % **, unary + and -, and parentheses"


def calculate(expression: str) -> float:
    """The value of an arithmetic expression such as `(1969 - 1903) / 2`.

    Only numbers, `+ - * / // % **`, unary `+ -` and parentheses are read; the expression is
    parsed with `ast` and walked, never run. Anything else (names, calls, attributes, strings),
    a division by zero, an exponent above `MAX_EXPONENT` or a number above `MAX_MAGNITUDE` raises
    `ValueError` saying why.
    """
    text = expression.strip()
    if not text:
        raise ValueError("calculate: the expression is empty")
    if len(text) > MAX_LENGTH:
        raise ValueError(f"calculate: the expression is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError) as error:  # ValueError: e.g. an integer of 5,000 digits
        why = error.msg if isinstance(error, SyntaxError) else str(error)
        raise ValueError(f"calculate: not an arithmetic expression: {text!r} ({why})") from None
    except RecursionError:
        raise ValueError("calculate: the expression is nested too deeply") from None
    try:
        value = _evaluate(tree.body, text)
    except RecursionError:
        raise ValueError("calculate: the expression is nested too deeply") from None
    return float(value)


def _evaluate(node: ast.expr, text: str) -> Number:
    if isinstance(node, ast.Constant):
        # bool is an int subclass: `True + 1` is not arithmetic on numbers.
        if isinstance(node.value, int | float) and not isinstance(node.value, bool):
            return _bounded(node.value, text)
        raise _refuse(node, text)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _bounded(_UNARY[type(node.op)](_evaluate(node.operand, text)), text)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left, text), _evaluate(node.right, text)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        try:
            value = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ValueError(f"calculate: division by zero in {_source(node, text)!r}") from None
        except OverflowError:
            raise _too_large(node, text) from None
        return _bounded(value, text, node)
    raise _refuse(node, text)


def _check_power(base: Number, exponent: Number) -> None:
    """Refuse a power whose exponent, or whose result, is too large, before computing it."""
    if abs(exponent) > MAX_EXPONENT:
        raise ValueError(f"calculate: the exponent {exponent} is larger than {MAX_EXPONENT}")
    # log10|base ** exponent| = exponent * log10|base|; a negative base with a fractional exponent
    # has a complex result, refused by _bounded.
    if base != 0 and exponent * math.log10(abs(base)) > MAX_DIGITS:
        raise ValueError(f"calculate: {base} ** {exponent} is larger than 10**{MAX_DIGITS}")


def _bounded(value: Number | complex, text: str, node: ast.expr | None = None) -> Number:
    where = f" in {_source(node, text)!r}" if node is not None else ""
    if isinstance(value, complex):
        raise ValueError(f"calculate: the result{where} is a complex number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"calculate: the result{where} is not a finite number")
    if abs(value) > MAX_MAGNITUDE:
        raise ValueError(f"calculate: a number{where} is larger than 10**{MAX_DIGITS}")
    return value


def _too_large(node: ast.expr, text: str) -> ValueError:
    found = _source(node, text)
    return ValueError(f"calculate: the result of {found!r} is larger than 10**{MAX_DIGITS}")


def _refuse(node: ast.expr, text: str) -> ValueError:
    found = _source(node, text)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitXor):
        return ValueError(f"calculate: '^' is not a power here; write ** ({found!r})")
    kind = {
        ast.Name: "a name",
        ast.Attribute: "an attribute",
        ast.Call: "a function call",
        ast.Subscript: "an index",
        ast.Compare: "a comparison",
        ast.Tuple: "a tuple (write numbers without thousands separators)",
        ast.BinOp: "another operator",
        ast.UnaryOp: "another operator",
        ast.BoolOp: "another operator",
    }.get(type(node), f"an expression of kind {type(node).__name__}")
    if isinstance(node, ast.Constant):
        kind = f"a {type(node.value).__name__} value"
    return ValueError(f"calculate: only {_ALLOWED} are allowed; found {kind}: {found!r}")


def _source(node: ast.expr, text: str) -> str:
    return ast.get_source_segment(text, node) or ast.unparse(node)
