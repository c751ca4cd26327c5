"""Where files live: one function per default location, so no module spells a path twice.

Everything goes under ``base_dir()``: ``$MINI_NANOCHAT_BASE_DIR``, default
``~/.cache/mini-nanochat``::

    <base>/data/<name>/      datasets (the embedded corpus: data/embedded; downloads: data/<dataset>)
    <base>/tokenizer/        the trained tokenizer (tokenizer.json)
    <base>/tokens/           cached token arrays (Phase 2's simple loader)
    <base>/runs/<name>/      training runs: metrics.jsonl, checkpoints/
    <base>/<tool>/           a learning tool's own cache (tool_dir: the playground's small tokenizer)

What it leaves out: per-user config files.
Run nothing here directly; it is imported.
"""
from __future__ import annotations

import os
from pathlib import Path


def base_dir() -> Path:
    """The project's working directory (created on first use; a UserError if it cannot be)."""
    from phases.common.console import UserError
    root = os.environ.get("MINI_NANOCHAT_BASE_DIR") or os.path.join("~", ".cache", "mini-nanochat")
    path = Path(root).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot use {path} as the base folder (MINI_NANOCHAT_BASE_DIR): {e.strerror or e}") from None
    if not path.is_dir():
        raise UserError(f"MINI_NANOCHAT_BASE_DIR={root} is a file, not a folder")
    return path


def data_dir(name: str = "embedded") -> Path:
    """A dataset's folder: ``<base>/data/<name>``."""
    return base_dir() / "data" / name


def tokenizer_dir() -> Path:
    """The default tokenizer folder: ``<base>/tokenizer``."""
    return base_dir() / "tokenizer"


def tokens_dir() -> Path:
    """Cached token arrays: ``<base>/tokens``."""
    return base_dir() / "tokens"


def runs_dir() -> Path:
    """Where runs live: ``<base>/runs``."""
    return base_dir() / "runs"


def run_dir(name: str) -> Path:
    """One run's folder: ``<base>/runs/<name>``."""
    return runs_dir() / name


def tool_dir(name: str) -> Path:
    """A learning tool's own cache: ``<base>/<name>`` (e.g. the playground's small tokenizer)."""
    return base_dir() / name
