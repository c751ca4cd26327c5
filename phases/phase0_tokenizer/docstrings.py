"""Docstrings as prose: find Python sources without importing them, extract and clean their docstrings.

The first half of the embedded corpus (``corpus.py`` writes the shards): every install of
this project holds megabytes of real English about code in the docstrings of the standard
library and of our dependencies. This file finds those sources, parses them, and returns
clean, de-duplicated documents in a fixed order.

1. Find source folders *without importing* them (``importlib.util.find_spec`` and
   ``sysconfig``), so no module runs (``import antigravity`` would open a browser).
2. Parse each ``.py`` file with ``ast`` in sorted order and collect module/class/function
   docstrings, plus the string arguments of torch's ``add_docstr(obj, "...")`` calls.
3. Clean (normalise newlines, drop short or symbol-heavy docs) and de-duplicate.

What it leaves out: HTML/reST rendering of the docstrings, near-duplicate detection.
Run it through the corpus builder: ``python -m phases.phase0_tokenizer.corpus``.
"""
from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import multiprocessing
import os
import platform
import sys
import sysconfig
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Sequence

from phases.common.console import UserError, progress

MIN_CHARS = 64  # shorter docstrings are mostly "Return self." one-liners: little prose, many repeats
MIN_TEXT_FRACTION = 0.5  # letters + whitespace; below this a "doc" is byte escapes or a bare heading
# Our direct dependencies first, then what they pull in, then the packaging tools.
# Missing ones are skipped, so any install with torch alone already exceeds 10 MB.
DEFAULT_PACKAGES: tuple[str, ...] = (
    "torch", "numpy", "regex", "pyarrow", "huggingface_hub",
    "sympy", "mpmath", "networkx", "jinja2", "markupsafe", "filelock", "fsspec",
    "typing_extensions", "packaging", "yaml", "tqdm", "pip", "setuptools",
)
# Folders never worth reading: test suites (docstrings like "Test foo."), IDLE and the
# old 2to3 tool, caches, and nested site-packages (a venv's stdlib path can contain it).
SKIP_DIRS = frozenset({"test", "tests", "__pycache__", "idlelib", "lib2to3", "turtledemo",
                       "site-packages", "dist-packages"})
# torch attaches most of its documentation at import time with these helpers.
DOCSTR_FUNCS = frozenset({"add_docstr", "_add_docstr", "add_docstr_all"})


# ---------------------------------------------------------------------------
# Finding source files (never importing them)


def _walk_py(root: Path) -> list[Path]:
    """All ``.py`` files under ``root`` in a fixed order (sorted folders, sorted names)."""
    if root.is_file():
        return [root] if root.suffix == ".py" else []
    out: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)  # in place: prunes the walk
        out += [Path(folder, f) for f in sorted(files)
                if f.endswith(".py") and not f.startswith("test_") and f != "conftest.py"]
    return out


def _stdlib_files(modules: Sequence[str] | None) -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    if modules is None:
        return _walk_py(root)
    files: list[Path] = []
    for name in modules:
        base = root.joinpath(*name.split("."))
        if base.is_dir():
            files += _walk_py(base)
        elif base.with_suffix(".py").is_file():
            files.append(base.with_suffix(".py"))
        else:
            raise UserError(f"{name!r} is not a pure-Python standard library module (looked in {root})")
    return files


def package_roots(packages: Sequence[str]) -> dict[str, Path]:
    """Source folder (or single file) of each installed top-level package; missing ones skipped."""
    roots: dict[str, Path] = {}
    for name in packages:
        if not name or "." in name:
            raise UserError(f"package names must be top-level import names, got {name!r}")
        try:
            spec = importlib.util.find_spec(name)  # top-level: locates, does not execute
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            continue
        if spec.submodule_search_locations:  # a package (maybe a namespace package)
            roots[name] = Path(sorted(spec.submodule_search_locations)[0])
        elif spec.origin and spec.origin.endswith(".py"):  # a single-file module
            roots[name] = Path(spec.origin)
    return roots


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        pass
    # The import name can differ from the distribution name (yaml -> PyYAML).
    for dist in importlib.metadata.packages_distributions().get(name, []):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


# ---------------------------------------------------------------------------
# Extracting and cleaning


def _string_value(node: ast.expr) -> str | None:
    """A string literal's value, or ``None`` for anything that would need running code."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):  # "a" + "b"
        left, right = _string_value(node.left), _string_value(node.right)
        return left + right if left is not None and right is not None else None
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format"):
        # torch writes r'''...{input}...'''.format(**common_args); evaluating the arguments
        # would mean running torch, so keep the template with its {placeholders} as written.
        return _string_value(node.func.value)
    if isinstance(node, ast.JoinedStr):  # f-strings need runtime values
        return None
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, str) else None


def _docs_from_file(path: Path) -> tuple[list[str], bool]:
    """(docstrings, parsed_ok) of one source file. Runs in worker processes."""
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))  # bytes: honours coding cookies
    except (SyntaxError, ValueError, UnicodeDecodeError, RecursionError, MemoryError, OSError):
        return [], False
    docs: list[str] = []
    for node in ast.walk(tree):  # breadth-first, but deterministic: fine for a shuffled corpus
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                docs.append(doc)
        elif isinstance(node, ast.Call):
            func = node.func
            fname = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if fname in DOCSTR_FUNCS:
                docs += [s for s in map(_string_value, node.args) if s]
    return [d for d in map(clean_doc, docs) if d is not None], True


def clean_doc(text: str) -> str | None:
    """Normalise one document, or ``None`` if it is too short, mostly symbols or not encodable."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) < MIN_CHARS:
        return None
    texty = sum(ch.isalpha() or ch.isspace() for ch in text)
    if texty < MIN_TEXT_FRACTION * len(text):
        return None
    try:
        text.encode("utf-8")  # lone surrogates from "\ud800" escapes cannot be stored
    except UnicodeEncodeError:
        return None
    return text


def extract_documents(packages: Sequence[str] | None = None, include_stdlib: bool = True,
                      show_progress: bool = True, *, stdlib_modules: Sequence[str] | None = None,
                      include_topics: bool | None = None, stats: dict | None = None) -> list[str]:
    """Cleaned, de-duplicated documents in a fixed order: pydoc topics, stdlib, then packages.

    ``stdlib_modules`` restricts the stdlib part to a few modules (tests use it);
    ``include_topics`` defaults to ``include_stdlib``. ``stats``, if given, receives
    ``packages`` (name -> version of those that contributed) and ``skipped_files``.
    """
    packages = DEFAULT_PACKAGES if packages is None else tuple(packages)
    include_topics = include_stdlib if include_topics is None else include_topics
    sources: list[tuple[str, list[Path]]] = []
    if include_stdlib:
        sources.append(("stdlib", _stdlib_files(stdlib_modules)))
    for name, root in package_roots(packages).items():
        sources.append((name, _walk_py(root)))
    all_files = [f for _, files in sources for f in files]

    per_file: list[tuple[list[str], bool]] = []
    bar = progress(total=len(all_files), desc="extracting docstrings", unit="files", enabled=show_progress)
    with bar:
        # Parsing ~5k files takes ~45 s on one core, so use every core where we safely can.
        # map() yields results in input order: the parallel result equals the serial one.
        # Only "fork" (Linux): "spawn" re-runs the caller's main script in each worker,
        # which breaks scripts without an `if __name__ == "__main__":` guard.
        if (len(all_files) >= 200 and (os.cpu_count() or 1) > 1 and sys.platform.startswith("linux")):
            ctx = multiprocessing.get_context("fork")
            try:
                with ProcessPoolExecutor(max_workers=min(os.cpu_count() or 1, 8), mp_context=ctx) as pool:
                    for result in pool.map(_docs_from_file, all_files, chunksize=16):
                        per_file.append(result)
                        bar.update(1)
            except (OSError, BrokenProcessPool):  # no processes allowed here: go serial
                per_file.clear()
                bar.reset(total=len(all_files))
        for path in all_files[len(per_file):]:
            per_file.append(_docs_from_file(path))
            bar.update(1)

    # Sources in a fixed order: pydoc topics, stdlib, then packages as listed.
    chunks = [_topic_docs()] if include_topics else []
    used = {"pydoc_data": platform.python_version()} if include_topics else {}
    i = 0
    for name, files in sources:
        docs = [d for ds, _ in per_file[i:i + len(files)] for d in ds]
        i += len(files)
        if docs:
            used[name] = platform.python_version() if name == "stdlib" else package_version(name)
        chunks.append(docs)

    seen: set[str] = set()
    out: list[str] = []
    for doc in (d for chunk in chunks for d in chunk):
        key = " ".join(doc.split())  # numpy and torch repeat many docstrings verbatim
        if key not in seen:
            seen.add(key)
            out.append(doc)
    if stats is not None:
        stats["packages"] = used
        stats["skipped_files"] = sum(not ok for _, ok in per_file)
    return out


def _topic_docs() -> list[str]:
    from pydoc_data.topics import topics  # plain data: a dict of help texts, safe to import
    return [d for d in (clean_doc(topics[k]) for k in sorted(topics)) if d is not None]
