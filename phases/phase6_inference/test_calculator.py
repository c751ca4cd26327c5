"""Phase 6 checkpoint, part 3: the calculator tool (run against yours with --impl calculator=my_calc.py).

Exact: results are Python's own arithmetic; every attack returns None within 50 ms; results
are the same from many threads at once.
"""
from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.phase6

ACCEPTED = [
    ("2+3*4", "14"), ("(2+3)*4", "20"), ("7/2", "3.5"), ("6/3", "2"), ("7//2", "3"), ("-7//2", "-4"),
    ("7 % 3", "1"), ("2**10", "1024"), ("2**-2", "0.25"), ("-3 + +4", "1"), ("1,234 + 1", "1235"),
    ("1,000,000 * 3", "3000000"), ("0.1 + 0.2", "0.30000000000000004"), ("3.5e2", "350"),
    ('"strawberry".count("r")', "3"), ("'banana'.count('an')", "2"), (" 12 * 7 ", "84"),
    ("48/2", "24"), ("10**400 // 10**399", "10"), ("(" * 50 + "1" + ")" * 50, "1"),  # parentheses make no nodes
]

ATTACKS = [
    "__import__('os').system('echo hi')", "().__class__.__bases__[0].__subclasses__()", "open('/etc/passwd')",
    "exec('1')", "eval('1+1')", "globals()", "(lambda: 1)()", "[x for x in range(10**9)]", "9**9**9",
    "2**100000", "10**10**10", "(10**300)*(10**300)*(10**300)*(10**300)*(10**300)", "'a'*10**9",
    '"aa".count("a") ** 99999', "1/0", "0**-1", "1e308*10", "2.0**5000", "(" * 300 + "1" + ")" * 300,
    "-" * 400 + "1", "+".join(["1"] * 400), "x", "print(1)", '"abc".upper()', '"abc".count("a", 0)',
    '"abc".count(x)', '"abc"["__class__"]', "__builtins__", "import os", "1; 2", "a = 1", "f'{1}'",
    "{1: 2}", "[1, 2]", "(1, 2)", "1 if True else 2", "1 < 2", "not 1", "~1", "1 << 1000000", "1 & 1",
    '"x".count("x").__class__', "True + 1", "None", "...", "b'abc'.count(b'a')", "1j * 1j", "",
    "9" * 600, "'" + "a" * 10_000 + "'.count('a')", "\x00", "-(" * 60 + "1" + ")" * 60, "2**(" * 30 + "2" + ")" * 30,
]


@pytest.mark.parametrize("expr, want", ACCEPTED)
def test_what_the_data_uses_is_computed(calculator, expr, want):
    assert calculator.calculate(expr) == want


@pytest.mark.parametrize("expr", ATTACKS)
def test_every_attack_gives_no_result_quickly(calculator, expr):
    t0 = time.perf_counter()
    assert calculator.calculate(expr) is None
    assert time.perf_counter() - t0 < 0.05


def test_it_never_calls_eval_or_exec(calculator, monkeypatch):
    """Parsing (compile to an AST only) is allowed; compiling to code, eval and exec are not."""
    import ast
    import builtins
    real_compile = builtins.compile

    def refuse(*args, **kwargs):
        raise AssertionError("the calculator must not execute code")

    def parse_only(source, filename, mode, flags=0, *args, **kwargs):
        if not flags & ast.PyCF_ONLY_AST:
            refuse()
        return real_compile(source, filename, mode, flags, *args, **kwargs)
    monkeypatch.setattr(builtins, "eval", refuse)
    monkeypatch.setattr(builtins, "exec", refuse)
    monkeypatch.setattr(builtins, "compile", parse_only)
    assert calculator.calculate("2*21") == "42"
    assert calculator.calculate('"strawberry".count("r")') == "3"


def test_it_works_from_many_threads_at_once(calculator):
    """No signals, no shared state: nanochat's SIGALRM timeout fails outside the main thread."""
    results, errors = {}, []

    def work(i):
        try:
            results[i] = [calculator.calculate(f"{i}*{i}+1"), calculator.calculate("9**9**9")]
        except Exception as e:  # noqa: BLE001
            errors.append(e)
    threads = [threading.Thread(target=work, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == {i: [str(i * i + 1), None] for i in range(32)}


def _expressions():
    """(text, value) pairs of random arithmetic, the value computed here without parsing."""
    leaf = st.integers(0, 999).map(lambda n: (str(n), n))

    def combine(children):
        def make(a, op, b):
            (ta, va), (tb, vb) = a, b
            if op in "/%" and vb == 0:
                return (f"({ta})+({tb})", va + vb)
            value = {"+": va + vb, "-": va - vb, "*": va * vb, "/": va / vb if vb else 0,
                     "%": va % vb if vb else 0}[op]
            return (f"({ta}){op}({tb})", value)
        return st.builds(make, children, st.sampled_from("+-*/%"), children)
    return st.recursive(leaf, combine, max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(_expressions())
def test_random_arithmetic_matches_python(calculator, pair):
    text, value = pair
    got = calculator.evaluate(text)
    assert got == pytest.approx(value, rel=1e-12, abs=1e-12)


@pytest.mark.slow
def test_impl_swaps_in_a_learners_calculator(tmp_path):
    """--impl calculator=PATH runs these tests on another file: a copy that forgets commas fails."""
    import subprocess
    import sys
    from pathlib import Path
    reference = Path(__file__).with_name("calculator.py").read_text()
    broken = tmp_path / "my_calculator.py"
    broken.write_text(reference.replace('_THOUSANDS.sub("", expression.strip())', "expression.strip()"))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(Path(__file__)),
                           f"--impl=calculator={broken}", "-k", "data_uses"],
                          cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "1,234" in proc.stdout, proc.stdout[-2000:]
