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
- any other file a code listing comes from (so that its line link resolves)
- hidden folders, ``__pycache__``, ``.venv``, ``site`` are skipped

Theme assets (added by MkDocs before ``on_files`` runs) are kept as they are.
``on_config`` makes sure MathJax and mermaid are in ``docs/javascripts/vendor/``
(``docs/assets.py`` fetches them from the npm registry the first time) and keeps
``--strict`` strict under ``--quiet`` (which would hide the warnings it counts); ``on_pre_build``
checks every code listing of the repository (``docs/snippets.py``); ``on_page_markdown``
shows each listing as the module has it now; ``on_serve`` watches the optional folders
that exist.

Working on the docs (contributors, read this)
---------------------------------------------
* **Code listings are generated.** A lesson never pastes code: it shows a *region*,
  written by ``python docs/snippets.py --write`` from a marked section of a module.
  To show a new piece of code, put ``# --8<-- [start:NAME]`` and ``# --8<-- [end:NAME]``
  comment lines around it in the module, write the line
  ``--8<-- "phases/phaseN_x/module.py:NAME"`` in the Markdown where it goes, and run
  ``python docs/snippets.py --write``: the directive becomes a region holding the code,
  its line numbers and a link to the exact lines (``module.py#L10-L24``), readable on
  GitHub and in an editor as well as on the site.
* **Never edit inside ``<!-- include: ... -->`` ... ``<!-- /include -->``**: edit the
  module, then run ``--write``. Moving code between files moves its markers with it;
  ``--write`` then points the region at the new file by itself when exactly one file (of
  the same folder first) has a section of that name, and otherwise says which files do.
* **After a merge** (or whenever a module changed): run ``python docs/snippets.py --write``.
  A merge conflict inside a region needs no thought: keep either side, run ``--write``.
  A conflict between a region and a directive line someone added meanwhile: keep the
  directive, run ``--write``.
* ``python docs/snippets.py --check`` lists stale regions, missing or broken markers and
  sections that no page shows (remove their two marker lines). The same problems fail
  ``tests/test_docs_snippets.py`` and ``mkdocs build --strict`` (here: one warning each;
  ``mkdocs serve`` shows the fresh code meanwhile, so a live preview never lags behind).
* **Nothing is loaded from another host.** Scripts, styles and fonts ship with the site
  (ADR 0003): ``mkdocs.yml`` sets ``theme.font: false`` and loads MathJax and mermaid
  from ``docs/javascripts/vendor/``. Do not add a CDN URL, an external image or an
  iframe; ``tests/test_docs_site.py`` loads the lessons in headless Chromium with the
  network blocked and fails on any request to another host.
* **Check a change** with ``NO_MKDOCS_2_WARNING=1 mkdocs build --strict`` and
  ``pytest tests/test_docs_snippets.py tests/test_docs_site.py`` (the second needs
  Debian's ``chromium`` and ``chromium-driver``; it skips without them, except in CI).

Run nothing here directly; ``mkdocs.yml`` registers it with ``hooks: [docs/hooks.py]``.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files


def _load(name: str):
    """Import a sibling script (``docs/`` is not a package)."""
    qualified = f"mini_nanochat_docs_{name}"
    spec = importlib.util.spec_from_file_location(qualified, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module   # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


snippets = _load("snippets")
assets = _load("assets")
# A child of the "mkdocs" logger: under --strict, each warning fails the build.
log = logging.getLogger("mkdocs.hooks.mini_nanochat")
_state: dict = {}

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
    """Make sure the shipped scripts (MathJax, mermaid) are in place, fetching them if needed;
    keep ``--strict`` strict under ``--quiet``."""
    # `mkdocs build --strict --quiet` (as `make test` runs it) sets the "mkdocs" logger to ERROR,
    # so warnings never reach MkDocs's strict-mode counter: a broken link or a stale listing
    # would pass. Let warnings through (they are printed; informational lines stay quiet).
    mkdocs_log = logging.getLogger("mkdocs")
    if config.strict and mkdocs_log.level > logging.WARNING:
        mkdocs_log.setLevel(logging.WARNING)
    try:
        assets.ensure(log=log.info)
    except assets.AssetError as e:
        raise PluginError(str(e)) from None
    return config


def on_pre_build(config):
    """Check every code listing of the repository; each problem is a warning (fatal under --strict)."""
    root = _repo_root(config)
    report = snippets.scan(root)
    problems = report.problems()
    for problem in problems:
        log.warning(f"{problem}; run: {snippets.COMMAND}")
    _state["sources"] = snippets.Sources(root)
    _state["targets"] = sorted({r.source.partition(":")[0] for r in report.regions})


def on_page_markdown(markdown, page, config, files):
    """Show every listing as the module has it now (the file on disk may be stale: warned above)."""
    if "sources" not in _state:   # hooks called without on_pre_build (never by MkDocs itself)
        on_pre_build(config)
    text, _, _ = snippets.refresh_text(_state["sources"], page.file.src_uri, markdown)
    return text


def on_files(files: Files, config) -> Files:
    """Replace the files found in ``docs/`` by the repository-rooted collection."""
    root = _repo_root(config)
    docs_dir = os.path.normpath(config.docs_dir)
    # Keep what did not come from docs_dir (theme assets, files other plugins generated).
    kept = [f for f in files if f.src_dir is None or os.path.normpath(f.src_dir) != docs_dir]
    taken = {f.dest_uri for f in kept}
    new = []
    paths = collect_paths(root)
    if "targets" not in _state:
        on_pre_build(config)
    paths += [p for p in _state["targets"] if p not in set(paths) and (root / p).is_file()]
    for path in paths:
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
