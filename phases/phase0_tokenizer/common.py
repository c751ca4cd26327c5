"""Transitional re-export: the plumbing moved to ``phases/common/`` (console, files, paths).

Import from ``phases.common.console`` / ``phases.common.files`` / ``phases.common.paths``.
"""
from phases.common.console import (T, UserError, _fmt, cpu_model, paint, progress,  # noqa: F401
                                   run_command, use_color)
from phases.common.files import _fsync_dir, atomic_path, atomic_write_bytes, atomic_write_text  # noqa: F401
from phases.common.paths import base_dir  # noqa: F401
