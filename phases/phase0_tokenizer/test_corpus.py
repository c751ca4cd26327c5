"""Tests for the embedded corpus (docstrings.py, corpus.py) on a tiny source set, so they run in seconds.

Every build goes into pytest's ``tmp_path`` and ``MINI_NANOCHAT_BASE_DIR`` points there
too, so nothing is written outside it. The full ~19 MB build is not run here (it takes
tens of seconds); ``python -m phases.phase0_tokenizer.corpus`` does that.
Run: ``python -m pytest phases/phase0_tokenizer/test_corpus.py -q``
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from phases.phase0_tokenizer import corpus, docstrings, shards
from phases.common.console import UserError

pytestmark = pytest.mark.phase0

# A few stdlib modules plus one small dependency: ~40 docs, ~26k characters.
TINY = dict(packages=["markupsafe"], stdlib_modules=("json", "textwrap", "string"),
            include_topics=False, shard_chars=5_000, show_progress=False)


@pytest.fixture(autouse=True)
def _private_base_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINI_NANOCHAT_BASE_DIR", str(tmp_path / "base"))


def build(out: Path, **overrides) -> corpus.CorpusInfo:
    return corpus.build_embedded_corpus(out, **{**TINY, **overrides})


def shard_texts(path: Path) -> list[str]:
    return pq.read_table(path).column("text").to_pylist()


def test_layout_and_manifest(tmp_path: Path) -> None:
    info = build(tmp_path / "c")
    names = sorted(p.name for p in (tmp_path / "c").glob("*.parquet"))
    assert names == [f"shard_{i:05d}.parquet" for i in range(len(names))]
    assert len(names) >= 3 and info.shards == [tmp_path / "c" / n for n in names]
    for path in info.shards:
        pf = pq.ParquetFile(path)
        assert pf.schema_arrow.names == ["text"] and str(pf.schema_arrow.field("text").type) == "string"
        assert pf.num_row_groups == -(-pf.metadata.num_rows // shards.ROWS_PER_GROUP)
    manifest = json.loads((tmp_path / "c" / "manifest.json").read_text())
    assert manifest["val_shard"] == names[-1] and info.val_shard == info.shards[-1]
    assert [s["split"] for s in manifest["shards"]] == ["train"] * (len(names) - 1) + ["val"]
    for s, path in zip(manifest["shards"], info.shards):
        assert s["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert s["docs"] == len(shard_texts(path))
        assert s["bytes"] == sum(len(t.encode()) for t in shard_texts(path))
    assert manifest["num_docs"] == info.num_docs == sum(s["docs"] for s in manifest["shards"])
    assert set(info.packages) == {"stdlib", "markupsafe"}
    report = corpus.format_report(info)
    assert "val" in report and f"{info.num_bytes:,}" in report


def test_row_groups(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shards, "ROWS_PER_GROUP", 4)
    info = build(tmp_path / "c", shard_chars=20_000)
    pf = pq.ParquetFile(info.shards[0])
    assert pf.num_row_groups > 1
    assert all(pf.metadata.row_group(i).num_rows <= 4 for i in range(pf.num_row_groups))


def test_deterministic(tmp_path: Path) -> None:
    a, b = build(tmp_path / "a"), build(tmp_path / "b")
    assert [s.sha256 for s in a.shard_stats] == [s.sha256 for s in b.shard_stats]
    assert [p.read_bytes() for p in a.shards] == [p.read_bytes() for p in b.shards]
    assert list(shards.iter_texts(a.out_dir, "all")) == list(shards.iter_texts(b.out_dir, "all"))


def test_documents_clean_and_unique(tmp_path: Path) -> None:
    info = build(tmp_path / "c")
    texts = list(shards.iter_texts(info.out_dir, "all"))
    assert len(texts) == info.num_docs
    assert all(len(t) >= docstrings.MIN_CHARS and t == t.strip() and "\r" not in t for t in texts)
    normalised = [" ".join(t.split()) for t in texts]
    assert len(set(normalised)) == len(normalised)
    # The shuffle mixes sources: the shards hold the extracted docs, in another order.
    extracted = docstrings.extract_documents(["markupsafe"], stdlib_modules=TINY["stdlib_modules"],
                                         include_topics=False, show_progress=False)
    assert sorted(extracted) == sorted(texts) and extracted != texts


def test_extract_from_file(tmp_path: Path) -> None:
    long = "x words " * 10
    src = tmp_path / "m.py"
    src.write_text(
        f'"""Module doc. {long}"""\n'
        f'def f():\n    """Function doc. {long}"""\n'
        f'add_docstr(f, r"""Plain add_docstr. {long}""")\n'
        f'_add_docstr(f, "Concatenated " + """pieces. {long}""")\n'
        f'add_docstr(f, r"""Template {{input}}. {long}""".format(**common))\n'
        f'add_docstr(f, f"""An f-string {{name}}. {long}""")\n'
        f'class C:\n    """short"""\n')
    docs, ok = docstrings._docs_from_file(src)
    assert ok
    assert sorted(d.split(".")[0] for d in docs) == sorted(
        ["Module doc", "Function doc", "Plain add_docstr", "Concatenated pieces", "Template {input}"])
    broken = tmp_path / "broken.py"
    broken.write_text("def (:\n")
    assert docstrings._docs_from_file(broken) == ([], False)


def test_clean_doc() -> None:
    assert docstrings.clean_doc("short") is None
    assert docstrings.clean_doc("=+-*/" * 40) is None  # symbols, not text
    assert docstrings.clean_doc("  a line\r\n" + "word " * 20 + "\r") == "a line\n" + ("word " * 20).strip()
    assert docstrings.clean_doc("bad \ud800 " + "word " * 20) is None


def test_noop_rebuild_and_force(tmp_path: Path) -> None:
    first = build(tmp_path / "c")
    assert first.built
    mtimes = [p.stat().st_mtime_ns for p in first.shards]
    again = build(tmp_path / "c")
    assert not again.built and again.shards == first.shards
    assert [p.stat().st_mtime_ns for p in first.shards] == mtimes
    forced = build(tmp_path / "c", force=True)
    assert forced.built and [s.sha256 for s in forced.shard_stats] == [s.sha256 for s in first.shard_stats]
    first.shards[0].unlink()  # a damaged folder is rebuilt, not trusted
    assert build(tmp_path / "c").built and first.shards[0].exists()


def test_rebuild_removes_stale_shards(tmp_path: Path) -> None:
    many = build(tmp_path / "c", shard_chars=3_000)
    few = build(tmp_path / "c", shard_chars=12_000)  # settings changed: rebuilt without force
    assert few.built and len(few.shards) < len(many.shards)
    assert sorted((tmp_path / "c").glob("shard_*.parquet")) == few.shards


def test_crash_mid_build_leaves_no_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "c"
    build(out)
    real_write = pq.write_table
    calls = []

    def flaky_write(table, where, **kwargs):
        calls.append(where)
        if len(calls) == 2:  # second shard: leave a half-written file, then die
            Path(where).write_bytes(b"PAR1 partial")
            raise RuntimeError("disk on fire")
        real_write(table, where, **kwargs)

    monkeypatch.setattr(shards.pq, "write_table", flaky_write)
    with pytest.raises(RuntimeError, match="disk on fire"):
        build(out, force=True)
    assert not (out / "manifest.json").exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(shards.pq, "write_table", real_write)
    assert build(out).built  # the next call repairs it


def test_defaults_and_user_errors(tmp_path: Path) -> None:
    info = build(None, packages=["markupsafe", "surely_not_an_installed_package"])
    assert info.out_dir == tmp_path / "base" / "data" / "embedded"
    assert "surely_not_an_installed_package" not in info.packages
    with pytest.raises(UserError, match="standard library"):
        build(tmp_path / "x", stdlib_modules=("no_such_module_here",))
    with pytest.raises(UserError, match="at least 2"):
        build(tmp_path / "x", packages=[], include_stdlib=False)
