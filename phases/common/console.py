"""The console: user errors, exit codes, colour, progress bars.

- ``UserError``: raised for mistakes a user can fix (bad flag, missing file); command-line
  entry points run through ``run_command``, which prints ``error: <message>`` without a
  traceback and exits with status 2. ``positive_int`` is the argparse type for counts.
- ``use_color`` / ``paint``: ANSI colour that respects ``NO_COLOR`` and pipes;
  ``duration``: a time span for people (``12.3s``, ``1:02:03``).
- ``progress``: a tqdm progress bar on stderr (redrawn in place on a terminal, a few plain
  lines when piped, silent when disabled).

What it leaves out: logging frameworks.
Run nothing here directly; it is imported.
"""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Callable, Iterable, TextIO, TypeVar

T = TypeVar("T")


class UserError(Exception):
    """A mistake the user can fix; shown as ``error: <message>`` without a traceback."""


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def run_command(fn: Callable[[], object]) -> int:
    """Run a command-line entry point; turn user mistakes and Ctrl-C into exit codes.

    ``UserError`` -> ``error: …`` on stderr, status 2; Ctrl-C -> status 130; a closed pipe
    (``… | head``) -> status 0, quietly; a Rust panic from an extension (a ``BaseException``)
    or a ``MemoryError`` -> one ``error:`` line, status 1. Anything else is a bug and keeps its
    traceback.
    """
    try:
        with warnings.catch_warnings():
            warnings.formatwarning = _format_warning   # "warning: …", not Python's file:line: Class: source line
            fn()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except MemoryError as e:                 # an allocation the machine cannot make: a size asked for, not a bug
        print(f"error: out of memory ({str(e)[:200] or 'an allocation failed'}); ask for smaller sizes",
              file=sys.stderr)
        return 1
    except BrokenPipeError:
        # Point stdout at /dev/null so Python's final flush at exit does not complain.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except BaseException as e:  # a Rust panic in an extension (pyo3's PanicException) is a BaseException
        if type(e).__name__ != "PanicException":
            raise
        print(f"error: a native library failed on this input ({str(e)[:200]}); please report it", file=sys.stderr)
        return 1
    return 0


def command(description: str, add_arguments: Callable, run: Callable, argv: list[str] | None = None,
            runner: Callable[[Callable[[], object]], int] = run_command) -> int:
    """``python -m phases.…``: parse ``add_arguments``' flags (plus ``--no-progress``), call ``run(args)``.

    Every runnable module exposes ``add_arguments(parser)`` / ``run(args)``; ``mini-nanochat``
    mounts the same pair as a subcommand, so both command lines behave the same.
    """
    import argparse
    parser = argparse.ArgumentParser(description=description)
    add_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    return runner(lambda: run(args))


def positive_int(text: str) -> int:
    """An argparse ``type``: a whole number > 0 (``1_000`` allowed); anything else is a usage error."""
    import argparse
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def path_arg(text: str) -> Path:
    """An argparse ``type`` for a file or folder: an empty string is a usage error, not the
    current folder (``Path("")`` is ``.``: ``--out ""`` would write into wherever you stand)."""
    import argparse
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return Path(text)


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


def duration(seconds: float | None) -> str:
    """A time span for people: ``12.3s`` under a minute, else ``H:MM:SS`` (``unknown`` for None)."""
    if seconds is None:
        return "unknown"
    if seconds < 60:
        return f"{max(0.0, seconds):.1f}s"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


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


class _Lines:
    """What tqdm writes, as plain lines: in a log or CI output a redraw ("\\r…") becomes one line."""

    def __init__(self, stream: TextIO):
        self.stream, self.encoding = stream, getattr(stream, "encoding", None) or "utf-8"

    def write(self, text: str) -> None:
        if text.startswith("\r"):
            text = text[1:].rstrip()
            if text:
                self.stream.write(text + "\n")
        elif text.strip():
            self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def progress(iterable: Iterable[T] | None = None, total: float | None = None, desc: str = "",
             unit: str = "it", enabled: bool = True, stream: TextIO | None = None):
    """A tqdm progress bar on stderr: ``for x in progress(items, desc="docs")`` or by hand,
    ``bar = progress(total=n); bar.update(k); bar.close()``.

    On a terminal tqdm redraws it in place. Piped (a log file, CI) it is quiet: plain lines
    at about every 10% of a known total (every 30 s otherwise), never carriage returns.
    ``enabled=False`` (``--no-progress``) silences it. tqdm never colours its bar, so
    ``NO_COLOR`` has nothing to turn off here.
    """
    from tqdm import tqdm

    stream = stream if stream is not None else sys.stderr
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)  # type: ignore[arg-type]
    scale = unit == "B" or not total or total >= 100_000    # 2.05M chars, 31.4kB; but 7/40 files
    options = dict(total=total, desc=desc, unit=unit, disable=not enabled, unit_scale=scale, leave=True)
    if hasattr(stream, "isatty") and stream.isatty():
        return tqdm(iterable, file=stream, dynamic_ncols=True, mininterval=0.1, **options)
    every = max(1, int(total) // 10) if total else None
    return tqdm(iterable, file=_Lines(stream), ascii=True, ncols=80, mininterval=0 if every else 30,
                miniters=every or 1, **options)
