"""Shared display helpers of the learning tools: tables, sizes, dates, JSON, and the import path.

The tools in this folder are views: argument parsing and display over the phases' own
functions. What more than one tool prints the same way lives here, once: ``table`` (aligned
columns), ``size`` (bytes in binary units), ``date``, ``pct``, ``num`` (a number or a dash),
``clean`` (JSON without NaN), ``bold``, ``pyplot`` (matplotlib for PNGs, or a clear error). Importing this module also puts the repository root
on ``sys.path``, so ``python tools/X.py`` works from any folder without installing anything.

What it leaves out: anything a phase owns (formats, formulas, schedules): tools import those.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:          # `python tools/X.py`: only tools/ is on the path
    sys.path.insert(0, str(ROOT))

from phases.common.console import paint  # noqa: E402


def table(headers: list[str], rows: list[list], right: set[int] = frozenset(), rule: bool = True) -> str:
    """Aligned columns (``right``: indexes of right-aligned ones), a dashed rule under the header."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def fmt(r):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    lines = [cells[0]] + ([["-" * w for w in widths]] if rule else []) + cells[1:]
    return "\n".join(fmt(r).rstrip() for r in lines)


def size(n: float) -> str:
    """Bytes in the largest binary unit that keeps the number >= 1: ``812 B``, ``3.4 MiB``."""
    for unit, scale in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if n >= scale:
            return f"{n / scale:,.2f} {unit}"
    return f"{n:,.0f} B"


def date(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def num(x, spec: str = ".4f", none: str = "-") -> str:
    """``format(x, spec)``, or ``none`` when x is missing or not finite."""
    return format(x, spec) if isinstance(x, (int, float)) and math.isfinite(x) else none


def clean(x):
    """JSON-safe: NaN and infinities become null (``json.dumps`` would write invalid JSON)."""
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    return None if isinstance(x, float) and not math.isfinite(x) else x


def pyplot():
    """matplotlib's pyplot, drawing to files (no window); a clear error without the tools extra."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from phases.common.console import UserError
        raise UserError("the PNG needs matplotlib: pip install 'mini-nanochat[tools]'") from None
    return plt


def bold(text: str, color: bool) -> str:
    return paint(text, "1", color)
