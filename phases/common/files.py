"""Atomic writes, and output paths checked before the work starts.

- ``atomic_path`` / ``atomic_write_*``: write a temporary file next to the target, fsync it,
  rename it over the target. A crash at any moment leaves either the old file or the
  complete new one, never half of it (the rename is atomic on POSIX and Windows; the
  directory is fsynced so the rename itself survives a power cut).
- ``output_dir`` / ``output_file``: a command's ``--out`` folder or ``--png`` file, checked
  (and its folder created) when the command starts, so a path that is a file, a folder or
  unwritable is one clear ``error:`` line instead of a traceback after minutes of work.
- ``read_text``: a file the user named (a config, a JSONL file), read as UTF-8 with one clear
  ``error:`` line for each way it can be wrong (missing, a folder, not UTF-8, unreadable).

What it leaves out: locking between concurrent writers (the last rename wins).
Run nothing here directly; it is imported.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from phases.common.console import UserError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success fsync it and rename it over ``target``.

    If the body raises, the temporary file is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:  # make the bytes durable before the rename
            os.fsync(f.fileno())
        os.replace(tmp_path, target)  # atomic on POSIX and Windows
        _fsync_dir(target.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _fsync_dir(path: Path) -> None:
    # The rename itself is durable only once the directory entry is flushed (POSIX).
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def output_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """The folder ``path``, created now (with its parents); a UserError if it cannot be written into.

    ``what`` names it in the message, e.g. ``"--out"``.
    """
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:                      # a parent is a file, no permission, read-only disk
        raise UserError(f"{what} {path}: cannot create the folder ({e.strerror or e})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{what} {path}: the folder is not writable")
    return path


def output_file(path: str | os.PathLike, what: str = "output file", suffix: str | None = None) -> Path:
    """A file about to be written: not a folder, ending in ``suffix`` if given, its folder created now."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder; give a file name")
    if suffix and path.suffix.lower() != suffix:
        raise UserError(f"{what} {path}: the file name must end in {suffix}")
    output_dir(path.parent, what)
    return path


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(target, text.encode("utf-8"))


def read_text(path: str | os.PathLike, what: str = "file", give: str = "") -> str:
    """The UTF-8 text of a file the user named; ``give`` completes "is a folder; give ...".
    ``-`` reads standard input."""
    import sys
    path = Path(path)
    named = f"{what} {path}".strip()
    try:
        return sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except FileNotFoundError:
        where = "" if path.is_absolute() else f" (a relative path is taken from the current directory, {Path.cwd()})"
        raise UserError(f"{named} does not exist{where}") from None
    except IsADirectoryError:
        raise UserError(f"{named} is a folder" + (f"; give {give}" if give else "")) from None
    except UnicodeDecodeError as e:
        raise UserError(f"{named} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise UserError(f"cannot read {named}: {e.strerror or e}") from None
