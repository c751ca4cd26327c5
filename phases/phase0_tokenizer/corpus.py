"""The embedded corpus: an offline pretraining-style dataset built from docstrings already on disk.

Every install of this project already holds megabytes of real English prose about code:
the docstrings of the Python standard library, the ``pydoc_data`` help topics and the
docstrings of our dependencies (torch, numpy, sympy, networkx, ...). This file turns them
into the same layout as the pretraining shards a later phase downloads (``shards.py``:
``shard_00000.parquet``, ... with one string column ``text``, the last shard held out for
validation). So the tokenizer (and later the data loader) can be trained and tested with
no network at all. This file extracts, cleans and writes; ``shards.py`` reads it back.

How it works:

1. Find source folders *without importing* them (``importlib.util.find_spec`` and
   ``sysconfig``), so no module runs (``import antigravity`` would open a browser).
2. Parse each ``.py`` file with ``ast`` in sorted order and collect module/class/function
   docstrings, plus the string arguments of torch's ``add_docstr(obj, "...")`` calls.
3. Clean (normalise newlines, drop short or symbol-heavy docs), de-duplicate, shuffle
   with a fixed seed, cut into shards of ~``shard_chars`` characters and write them
   atomically; ``manifest.json`` is written last and describes exactly what is on disk.

The result is deterministic for given Python and package versions. What it leaves out:
downloading anything, HTML/reST rendering of the docstrings, near-duplicate detection.

Run it: ``python -m phases.phase0_tokenizer.corpus [--force] [--out DIR]`` builds the
corpus into ``$MINI_NANOCHAT_BASE_DIR/data/embedded`` (or reuses it) and prints a report
(``mini-nanochat data embedded`` mounts the same ``add_arguments`` / ``run``).
"""
from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import json
import multiprocessing
import os
import platform
import random
import sys
import sysconfig
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pyarrow as pa

from phases.common.console import UserError, command, path_arg, progress
from phases.common.files import atomic_write_text, output_dir
from phases.common.paths import data_dir
from phases.phase0_tokenizer import shards as shard_format
from phases.phase0_tokenizer.shards import SHARD_GLOB, shard_name, write_shard

FORMAT_VERSION = 1
BUILDER_VERSION = 1  # bump whenever extraction or cleaning changes, so old builds count as stale
MIN_CHARS = 64  # shorter docstrings are mostly "Return self." one-liners: little prose, many repeats
MIN_TEXT_FRACTION = 0.5  # letters + whitespace; below this a "doc" is byte escapes or a bare heading
SEED = 42
MANIFEST = "manifest.json"

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


@dataclass
class ShardStat:
    name: str
    docs: int
    bytes: int
    sha256: str
    split: str  # "train" or "val"


@dataclass
class CorpusInfo:
    out_dir: Path
    shards: list[Path]
    val_shard: Path
    num_docs: int
    num_bytes: int
    shard_stats: list[ShardStat]
    packages: dict[str, str]  # the packages that contributed, with their versions
    built: bool  # False when an up-to-date build was reused
    skipped_files: int = 0
    elapsed_s: float = 0.0
    manifest: dict = field(default_factory=dict, repr=False)


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


def _package_roots(packages: Sequence[str]) -> dict[str, Path]:
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


def _version(name: str) -> str:
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
    for name, root in _package_roots(packages).items():
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
            used[name] = platform.python_version() if name == "stdlib" else _version(name)
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


# ---------------------------------------------------------------------------
# Building the shards


def _split_shards(docs: list[str], shard_chars: int) -> list[list[str]]:
    """Cut ``docs`` into >= 2 consecutive shards of roughly equal character counts."""
    total = sum(map(len, docs))
    n = min(len(docs), max(2, -(-total // shard_chars)))  # ceil division
    target = total / n
    shards: list[list[str]] = [[]]
    cum = 0
    for doc in docs:
        shards[-1].append(doc)
        cum += len(doc)
        if len(shards) < n and cum >= target * len(shards):
            shards.append([])
    while not shards[-1]:  # a huge final doc can leave the last shard empty: borrow one doc
        shards.pop()
        shards.append([shards[-1].pop()])
    return shards


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _info_from_manifest(out_dir: Path, manifest: dict, built: bool) -> CorpusInfo:
    stats = [ShardStat(**s) for s in manifest["shards"]]
    shards = [out_dir / s.name for s in stats]
    return CorpusInfo(out_dir=out_dir, shards=shards, val_shard=out_dir / manifest["val_shard"],
                      num_docs=manifest["num_docs"], num_bytes=manifest["num_bytes"],
                      shard_stats=stats, packages=manifest["packages"], built=built,
                      skipped_files=manifest["skipped_files"], manifest=manifest)


def _reusable(out_dir: Path, key: dict) -> dict | None:
    """The existing manifest if it was built for this exact environment and its shards are intact."""
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("key") != key:
            return None
        for s in manifest["shards"]:
            if _sha256(out_dir / s["name"]) != s["sha256"]:
                return None
        return manifest
    except (OSError, ValueError, KeyError, TypeError):
        return None


def build_embedded_corpus(out_dir: str | os.PathLike | None = None, *,
                          packages: Sequence[str] | None = None, include_stdlib: bool = True,
                          shard_chars: int = 2_000_000, force: bool = False,
                          show_progress: bool = True, stdlib_modules: Sequence[str] | None = None,
                          include_topics: bool | None = None) -> CorpusInfo:
    """Build (or reuse) the corpus in ``out_dir`` (default ``data_dir("embedded")``)."""
    start = time.perf_counter()
    if shard_chars <= 0:
        raise UserError(f"shard_chars must be positive, got {shard_chars}")
    out = output_dir(out_dir if out_dir is not None else data_dir("embedded"), "corpus folder")  # before the work
    pkgs = DEFAULT_PACKAGES if packages is None else tuple(packages)
    include_topics = include_stdlib if include_topics is None else include_topics
    # Everything the output depends on; if it all matches, the old build is still right.
    key = {"format_version": FORMAT_VERSION, "builder_version": BUILDER_VERSION,
           "python": platform.python_version(), "pyarrow": pa.__version__,
           "packages": {n: _version(n) for n in _package_roots(pkgs)},
           "include_stdlib": include_stdlib, "include_topics": include_topics,
           "stdlib_modules": None if stdlib_modules is None else list(stdlib_modules),
           "shard_chars": shard_chars, "seed": SEED}
    if not force and (manifest := _reusable(out, key)) is not None:
        return _info_from_manifest(out, manifest, built=False)

    stats: dict = {}
    docs = extract_documents(pkgs, include_stdlib, show_progress, stdlib_modules=stdlib_modules,
                             include_topics=include_topics, stats=stats)
    if len(docs) < 2:
        raise UserError(f"only {len(docs)} document(s) found; a corpus needs at least 2 "
                        "(one train shard, one val shard): add packages or the stdlib")
    random.Random(SEED).shuffle(docs)  # so every shard mixes all packages
    shards = _split_shards(docs, shard_chars)

    out.mkdir(parents=True, exist_ok=True)
    # The old manifest goes first: from now until the new one lands, a crash leaves a folder
    # that ensure_embedded_corpus() sees as "not built" rather than one it trusts wrongly.
    (out / MANIFEST).unlink(missing_ok=True)
    shard_stats: list[ShardStat] = []
    for i, shard_docs in enumerate(shards):
        path = out / shard_name(i)
        write_shard(path, shard_docs)
        split = "val" if i == len(shards) - 1 else "train"
        shard_stats.append(ShardStat(path.name, len(shard_docs),
                                     sum(len(d.encode("utf-8")) for d in shard_docs), _sha256(path), split))
    manifest = {**key, "key": key, "num_docs": len(docs),
                "num_bytes": sum(s.bytes for s in shard_stats),
                "packages": stats["packages"], "skipped_files": stats["skipped_files"],
                "min_chars": MIN_CHARS, "rows_per_group": shard_format.ROWS_PER_GROUP,
                "val_shard": shard_stats[-1].name, "shards": [vars(s) for s in shard_stats]}
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    keep = {s.name for s in shard_stats}
    for stale in out.glob(SHARD_GLOB):  # left over from an earlier build with more shards
        if stale.name not in keep:
            stale.unlink()
    info = _info_from_manifest(out, manifest, built=True)
    info.elapsed_s = time.perf_counter() - start
    return info


def ensure_embedded_corpus(out_dir: str | os.PathLike | None = None, show_progress: bool = True) -> CorpusInfo:
    """The default corpus, built on first use and rebuilt when the environment changed."""
    return build_embedded_corpus(out_dir, show_progress=show_progress)


def format_report(info: CorpusInfo) -> str:
    """A table of documents and bytes per shard, with totals; the val shard is marked."""
    width = max(len(s.name) for s in info.shard_stats)
    lines = [f"embedded corpus in {info.out_dir} ({'built' if info.built else 'up to date, reused'}"
             + (f" in {info.elapsed_s:.1f}s" if info.built else "") + ")",
             f"{'shard':<{width}}  {'split':<5}  {'docs':>8}  {'bytes':>12}"]
    for s in info.shard_stats:
        lines.append(f"{s.name:<{width}}  {s.split:<5}  {s.docs:>8,}  {s.bytes:>12,}")
    lines.append(f"{'total':<{width}}  {'':<5}  {info.num_docs:>8,}  {info.num_bytes:>12,}"
                 f"  ({info.num_bytes / 1e6:.1f} MB)")
    lines.append("sources: " + ", ".join(f"{k} {v}" for k, v in info.packages.items()))
    if info.skipped_files:
        lines.append(f"skipped {info.skipped_files} file(s) that did not parse")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# The command line


def add_arguments(parser) -> None:
    parser.add_argument("--out", type=path_arg, default=None, help="output folder (default <base>/data/embedded)")
    parser.add_argument("--force", action="store_true", help="rebuild even if an up-to-date corpus exists")


def run(args) -> CorpusInfo:
    info = build_embedded_corpus(args.out, force=args.force, show_progress=not getattr(args, "no_progress", False))
    print(format_report(info))
    return info


if __name__ == "__main__":
    sys.exit(command("Build the embedded (offline) docstring corpus.", add_arguments, run))
