"""The console: user errors, exit codes, colour, progress bars.

- ``UserError``: raised for mistakes a user can fix (bad flag, missing file); command-line
  entry points run through ``run_command``, which prints ``error: <message>`` without a
  traceback and exits with status 2.
- ``use_color`` / ``paint``: ANSI colour that respects ``NO_COLOR`` and pipes.
- ``progress``: a progress bar on stderr (redrawn in place on a terminal, a few plain lines
  when piped, silent when disabled).

What it leaves out: logging frameworks.
Run nothing here directly; it is imported.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, TextIO, TypeVar

T = TypeVar("T")


class UserError(Exception):
    """A mistake the user can fix; shown as ``error: <message>`` without a traceback."""


def run_command(fn: Callable[[], object]) -> int:
    """Run a command-line entry point; turn user mistakes and Ctrl-C into exit codes.

    ``UserError`` -> ``error: …`` on stderr, status 2; Ctrl-C -> status 130; a closed pipe
    (``… | head``) -> status 0, quietly. Anything else is a bug and keeps its traceback.
    """
    try:
        fn()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Point stdout at /dev/null so Python's final flush at exit does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0


def cpu_model() -> str:
    """The CPU's model name (benchmarks state the hardware next to every figure)."""
    import platform
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def use_color(stream: TextIO | None = None, force: bool | None = None) -> bool:
    """Colour only on a terminal, never when ``NO_COLOR`` is set (https://no-color.org)."""
    if force is not None:
        return force
    if os.environ.get("NO_COLOR"):
        return False
    stream = stream if stream is not None else sys.stdout
    return hasattr(stream, "isatty") and stream.isatty()


def paint(text: str, code: str, enabled: bool) -> str:
    """Wrap ``text`` in the ANSI SGR ``code`` (e.g. ``"1;32"``) when ``enabled``."""
    return f"\x1b[{code}m{text}\x1b[0m" if enabled else text


# ---------------------------------------------------------------------------
# Progress


class progress:
    """Iterate with a progress bar on stderr: ``for x in progress(items, total=n, desc="docs")``.

    Also usable by hand: ``bar = progress(total=n); bar.update(k); bar.close()``.
    On a terminal the bar is redrawn in place; otherwise at most ~10 plain lines are
    printed, so logs and CI output stay readable. ``enabled=False`` silences it.
    """

    def __init__(self, iterable: Iterable[T] | None = None, total: float | None = None,
                 desc: str = "", unit: str = "it", enabled: bool = True,
                 stream: TextIO | None = None):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.desc, self.unit, self.enabled = total, desc, unit, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.n = 0.0
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._last_decile = -1
        self._closed = False

    def __iter__(self) -> Iterator[T]:
        assert self.iterable is not None, "progress() needs an iterable to iterate"
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, k: float = 1) -> None:
        self.n += k
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.tty:
            if now - self._last_draw >= 0.1:
                self._draw(now, end="\r")
        elif self.total:
            decile = int(10 * self.n / self.total)
            if decile > self._last_decile and decile < 10:
                self._last_decile = decile
                self._draw(now, end="\n")

    def _draw(self, now: float, end: str) -> None:
        self._last_draw = now
        elapsed = now - self.start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        if self.total:
            frac = min(1.0, self.n / self.total)
            width = 24
            filled = int(frac * width)
            bar = "#" * filled + "-" * (width - filled)
            eta = (self.total - self.n) / rate if rate > 0 else 0.0
            msg = (f"{self.desc}: {frac * 100:5.1f}% |{bar}| {_fmt(self.n)}/{_fmt(self.total)} {self.unit}"
                   f" [{elapsed:.1f}s, eta {eta:.1f}s, {_fmt(rate)} {self.unit}/s]")
        else:
            msg = f"{self.desc}: {_fmt(self.n)} {self.unit} [{elapsed:.1f}s, {_fmt(rate)} {self.unit}/s]"
        self.stream.write(("\x1b[2K" if self.tty else "") + msg + end)
        self.stream.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.enabled:
            self._draw(time.perf_counter(), end="\n")


def _fmt(x: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.2f}{unit}"
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.2f}"
