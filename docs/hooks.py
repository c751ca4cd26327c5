"""MkDocs hook: build the site as if the repository root were the docs directory.

Why: every phase keeps its lesson (``README.md``), ``ADR.md``, ``COMPARISON.md``,
``exercise.md`` and modules side by side in ``phases/phaseN_*/``. The site should show
those very files, not copies that drift apart, and a link written for GitHub
(``../../LEARNING_GUIDE.md``, ``ADR.md``, ``bpe.py``) should work, unchanged, on the
site, where ``mkdocs build --strict`` checks it.

How: ``mkdocs.yml`` keeps ``docs_dir: docs`` (MkDocs needs one), and ``on_files`` throws
away the files MkDocs found there and rebuilds the collection from the repository root:

- ``docs/**``                      -> src_uri ``docs/<path>`` (this hook file excluded)
- ``README.md``                    -> the home page (``README.md`` maps to ``index.html``)
- ``LEARNING_GUIDE.md``, ``IMPLEMENTATION_ROADMAP.md``, ``HISTORICAL_TIMELINE.md``
- ``phases/**``: ``*.md`` as pages; everything else (modules, ``testdata/``, images)
  as static files, so that a lesson's link to its module or data resolves (and is
  validated)
- ``tools/*.py``, ``tools/*.md``, ``examples/*``, ``pyproject.toml``
- hidden folders, ``__pycache__``, ``.venv``, ``site`` are skipped

Theme assets (added by MkDocs before ``on_files`` runs) are kept as they are.
``on_config`` makes ``pymdownx.snippets`` base paths relative to the folder holding
``mkdocs.yml`` (so ``mkdocs build -f path/to/mkdocs.yml`` works from anywhere), and
``on_serve`` watches the optional folders that exist.

Run nothing here directly; ``mkdocs.yml`` registers it with ``hooks: [docs/hooks.py]``.
"""
from __future__ import annotations

import os
from pathlib import Path

from mkdocs.structure.files import File, Files

# Folders never walked, wherever they appear.
SKIP_DIRS = {"__pycache__", ".venv", "venv", "site", "node_modules", "build", "dist"}
# Never published: compiled or build leftovers.
SKIP_SUFFIXES = (".pyc", ".pyo")
TOP_LEVEL_PAGES = ("README.md", "LEARNING_GUIDE.md", "IMPLEMENTATION_ROADMAP.md", "HISTORICAL_TIMELINE.md")
TOP_LEVEL_STATIC = ("pyproject.toml",)
HOOK_FILE = "docs/hooks.py"


def _repo_root(config) -> Path:
    """The folder holding mkdocs.yml: the repository root."""
    return Path(config.config_file_path).resolve().parent


def _walk(root: Path, top: str, exts: set[str] | None, recursive: bool = True):
    """Yield repo-relative POSIX paths of files under ``root/top`` (sorted, hidden skipped)."""
    base = root / top
    if not base.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS and not d.endswith(".egg-info"))
        if not recursive:
            dirnames[:] = []
        for name in sorted(filenames):
            if name.startswith(".") or name.endswith(SKIP_SUFFIXES):
                continue
            if exts is not None and Path(name).suffix.lower() not in exts:
                continue
            yield (Path(dirpath) / name).relative_to(root).as_posix()


def collect_paths(root: Path) -> list[str]:
    """Every repo-relative path the site publishes, in a stable order."""
    paths: list[str] = [p for p in TOP_LEVEL_PAGES + TOP_LEVEL_STATIC if (root / p).is_file()]
    paths += [p for p in _walk(root, "docs", None) if p != HOOK_FILE]
    paths += list(_walk(root, "phases", None))
    paths += list(_walk(root, "tools", {".py", ".md"}, recursive=False))
    paths += list(_walk(root, "examples", None, recursive=False))
    return paths


def on_config(config):
    """Resolve relative ``pymdownx.snippets`` base paths against the repository root."""
    root = _repo_root(config)
    snippets = config.mdx_configs.get("pymdownx.snippets")
    if snippets:
        base = snippets.get("base_path", ["."])
        if isinstance(base, str):
            base = [base]
        snippets["base_path"] = [str((root / b).resolve()) if not os.path.isabs(b) else b for b in base]
    return config


def on_files(files: Files, config) -> Files:
    """Replace the files found in ``docs/`` by the repository-rooted collection."""
    root = _repo_root(config)
    docs_dir = os.path.normpath(config.docs_dir)
    # Keep what did not come from docs_dir (theme assets, files other plugins generated).
    kept = [f for f in files if f.src_dir is None or os.path.normpath(f.src_dir) != docs_dir]
    taken = {f.dest_uri for f in kept}
    new = []
    for path in collect_paths(root):
        file = File(path, src_dir=str(root), dest_dir=config.site_dir, use_directory_urls=config.use_directory_urls)
        if file.dest_uri in taken:  # e.g. a folder with both README.md and index.md
            continue
        taken.add(file.dest_uri)
        new.append(file)
    return Files(kept + new)


def on_serve(server, config, builder):
    """Also watch the optional folders that exist (``watch:`` in mkdocs.yml needs them to)."""
    root = _repo_root(config)
    for name in ("tools", "examples"):
        if (root / name).is_dir():
            server.watch(str(root / name))
    return server
