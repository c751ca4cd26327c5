"""The calculator tool: evaluate what the model writes between <|python_start|> and <|python_end|>.

nanochat's model learns (from GSM8K's ``<<48/2=24>>`` annotations, and once from a
"spelling bee" task) to call a calculator; its engine ran the text through Python's
``eval`` with empty builtins under a SIGALRM timeout. ``eval`` of model output is a
sandbox that has been escaped before, and SIGALRM only works in the main thread (a server
runs the engine elsewhere). Here nothing is ever executed: the text is parsed with
``ast.parse`` and the tree is *walked* by a small interpreter that knows exactly:

- numbers (ints, floats), ``+ - * / // % **``, unary ``+``/``-`` and parentheses;
- thousands separators (``1,234.5``: commas between digits are dropped first);
- ``"some text".count("x")`` (string literal receivers and arguments only).

Anything else (names, attributes other than ``.count``, calls, subscripts, comprehensions,
lambdas, f-strings, ...) gives "no result" (``None``). Every step is bounded, so no
input can hang or exhaust memory: at most ``MAX_CHARS`` characters, ``MAX_NODES`` tree
nodes and ``MAX_DEPTH`` nesting; integer results of at most ``MAX_INT_BITS`` bits
(checked *before* multiplying or raising to a power: ``9**9**9`` is refused, not computed);
floats must stay finite. It keeps no state, so it is safe in any thread.

What it leaves out: variables, functions (sqrt, round), comparisons, code execution
(Phase 7's HumanEval runs code in a subprocess sandbox instead).

Run: ``python -m phases.phase6_inference.calculator "12*(3+4)"``.
"""
from __future__ import annotations

import ast
import math
import operator
import re

MAX_CHARS = 500          # expression length
MAX_NODES = 200          # syntax-tree nodes
MAX_DEPTH = 40           # nesting of the tree
MAX_INT_BITS = 4096      # about 1,233 decimal digits
MAX_FLOAT = 1e300

_THOUSANDS = re.compile(r"(?<=\d),(?=\d)")
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


class _Refused(Exception):
    """The expression is outside what the calculator accepts."""


def _bits(x: int | float) -> float:
    """Bits of magnitude of a number (floats by their exponent)."""
    if isinstance(x, int):
        return x.bit_length()
    return math.frexp(x)[1] if x else 0


# --8<-- [start:check]
def _check_size(op: type, a, b) -> None:
    """Refuse, before computing, an operation whose result would be too large."""
    if isinstance(a, int) and isinstance(b, int):
        if op is ast.Mult and a.bit_length() + b.bit_length() > MAX_INT_BITS:
            raise _Refused("product too large")
        if op is ast.Pow and b > 0 and max(a.bit_length() - 1, 0) * b > MAX_INT_BITS:
            raise _Refused("power too large")          # |a| >= 2^(bits-1), so |a|^b >= 2^((bits-1) b)
        if op is ast.Pow and b < 0 and (a == 0 or -b * a.bit_length() > 1100):
            raise _Refused("negative power out of range")
    elif op is ast.Pow and abs(b) * _bits(a) > 1100:
        raise _Refused("power out of float range")
# --8<-- [end:check]


def _eval(node: ast.AST, depth: int = 0):
    if depth > MAX_DEPTH:
        raise _Refused("too deeply nested")
    if isinstance(node, ast.Expression):
        return _eval(node.body, depth + 1)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        value = _eval(node.operand, depth + 1)
        return _UNARY[type(node.op)](_number(value))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        a, b = _number(_eval(node.left, depth + 1)), _number(_eval(node.right, depth + 1))
        _check_size(type(node.op), a, b)
        return _BINOPS[type(node.op)](a, b)
    if isinstance(node, ast.Call):               # "text".count("x"), nothing else
        f = node.func
        if (isinstance(f, ast.Attribute) and f.attr == "count" and _is_str(f.value)
                and len(node.args) == 1 and _is_str(node.args[0]) and not node.keywords):
            return f.value.value.count(node.args[0].value)
    raise _Refused(f"{type(node).__name__} is not allowed")


def _is_str(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) is str


def _number(value):
    if type(value) not in (int, float):
        raise _Refused("arithmetic on a non-number")
    return value


def evaluate(expression: str) -> int | float | None:
    """The value of ``expression``, or None when it is not an allowed, bounded calculation."""
    if not isinstance(expression, str):
        return None
    text = _THOUSANDS.sub("", expression.strip())
    if not text or len(text) > MAX_CHARS:
        return None
    try:
        tree = ast.parse(text, mode="eval")
        if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
            return None
        value = _eval(tree)
    except (_Refused, SyntaxError, ValueError, ArithmeticError, RecursionError, MemoryError, TypeError):
        return None
    if isinstance(value, bool) or type(value) not in (int, float):
        return None
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        return None
    if isinstance(value, float) and (not math.isfinite(value) or abs(value) > MAX_FLOAT):
        return None
    return value


def format_result(value: int | float) -> str:
    """How a result is written back to the model: integral floats as integers (6/3 -> "2")."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return str(value)


def calculate(expression: str) -> str | None:
    """``evaluate`` then ``format_result``: the text the engine forces after <|output_start|>."""
    value = evaluate(expression)
    return None if value is None else format_result(value)


if __name__ == "__main__":
    import sys

    for expr in sys.argv[1:] or ["12*(3+4)", "1,234 * 2", '"strawberry".count("r")', "9**9**9", "__import__('os')"]:
        print(f"{expr!r:32} -> {calculate(expr)!r}")
