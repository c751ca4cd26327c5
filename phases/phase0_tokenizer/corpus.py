"""The embedded corpus: an offline pretraining-style dataset built from docstrings already on disk.

Every install of this project already holds megabytes of real English prose about code:
the docstrings of the Python standard library, the ``pydoc_data`` help topics and the
docstrings of our dependencies (torch, numpy, sympy, networkx, ...). This file turns them
into the same layout as the pretraining shards a later phase downloads (``shards.py``:
``shard_00000.parquet``, ... with one string column ``text``, the last shard held out for
validation). So the tokenizer (and later the data loader) can be trained and tested with
no network at all. This file writes the shards; ``shards.py`` reads them back.

How it works: ``docstrings.py`` finds the sources (without importing them), extracts and
cleans their docstrings; this file shuffles them with a fixed seed, cuts them into shards of
~``shard_chars`` characters and writes them atomically; ``manifest.json`` is written last and
describes exactly what is on disk, so a later run reuses an up-to-date build.

The result is deterministic for given Python and package versions. What it leaves out:
downloading anything (the real pretraining data is Phase 5's).

Run it: ``python -m phases.phase0_tokenizer.corpus [--force] [--out DIR]`` builds the
corpus into ``$MINI_NANOCHAT_BASE_DIR/data/embedded`` (or reuses it) and prints a report
(``mini-nanochat data embedded`` mounts the same ``add_arguments`` / ``run``).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pyarrow as pa

from phases.common.console import UserError, command, path_arg
from phases.common.files import atomic_write_text, output_dir
from phases.common.paths import data_dir
from phases.phase0_tokenizer import shards as shard_format
from phases.phase0_tokenizer.docstrings import (DEFAULT_PACKAGES, MIN_CHARS, extract_documents, package_roots,
                                                package_version)
from phases.phase0_tokenizer.shards import SHARD_GLOB, shard_name, write_shard

FORMAT_VERSION = 1
BUILDER_VERSION = 1  # bump whenever extraction or cleaning (docstrings.py) changes: old builds go stale
SEED = 42
MANIFEST = "manifest.json"


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
           "packages": {n: package_version(n) for n in package_roots(pkgs)},
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
