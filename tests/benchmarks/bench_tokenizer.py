"""Tokenizer benchmark: our BPE next to rustbpe, HF ``tokenizers`` and the naive trainer, in one run.

What it measures, on the embedded docstring corpus (train split, documents cropped at
10,000 characters as nanochat does; all of it unless ``--max-chars`` says otherwise):

1. **Training time** (``time.perf_counter``, best of ``--repeats``) at each vocabulary size
   (default 4096 and 8192, special tokens included) for
   - ours: ``BPETokenizer.train`` (chunk counting in worker processes, merge loop in Python);
   - rustbpe (nanochat's trainer, Rust, rayon threads) via ``compression.train_rustbpe``;
   - HF ``tokenizers``: a BPE model with a ``BpeTrainer``, made a fair peer by splitting
     with the *same* regex (``Split(Regex(SPLIT_PATTERN), "isolated")`` then a byte-level
     mapping without its own regex) and the 256-byte initial alphabet;
   - the naive trainer (``naive.py``, recount every pair after every merge) on a slice of
     the corpus, with ours timed on the very same slice and vocabulary, so the speed-up is
     a like-for-like ratio.
   It also checks that ours and rustbpe learned identical vocabularies (the bytes of every id).
2. **Encode throughput** (MB/s of UTF-8 on the validation shard) with the vocabulary of the
   largest size: our pure-Python encoder (cold cache), our fast path (tiktoken), rustbpe and
   HF tokenizers, each one text at a time on one thread, and the batch APIs that use every
   core; it checks that the pure-Python and fast-path ids are identical.
3. **Compression**: bytes per token on the validation shard for ours, rustbpe and HF.

It prints markdown tables (hardware and software stated), PASS/FAIL for the project's two
targets (ours within 6x of rustbpe's training time at vocab 8192 on the full corpus;
compression within 1% of rustbpe's), and, as the **last line of stdout**, one JSON object
with every figure. Progress messages go to stderr. The exit status is 0 whether or not the
targets are met: this is a measurement, not a test.

Run from the repository root:

    python tests/benchmarks/bench_tokenizer.py              # the full run (a few minutes on 2 cores)
    python tests/benchmarks/bench_tokenizer.py --quick      # ~1 MB, vocab 1024/2048, seconds
    python tests/benchmarks/bench_tokenizer.py --help

The first run builds the embedded corpus (about a minute) unless ``--data DIR`` points at
existing shards. Peers that are not installed (``pip install rustbpe tokenizers tiktoken``)
show as "not installed".

What it leaves out: reading the parquet shards (texts are loaded into memory before any
clock starts), GPU anything, memory use, peak-vs-steady-state behaviour (no warm-up runs
besides building the tiktoken Encoding once), larger vocabularies (nanochat's 65,536) and
the GPT-2/GPT-4 vocabularies (they must be downloaded; the project runs offline). Thread and
process counts are the libraries' defaults, so the numbers depend on the core count.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sys
import time
from pathlib import Path

# Runnable as a plain script from anywhere: make the repository root importable.
REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:   # this checkout's phases, even if another one is installed
    sys.path.insert(0, str(REPO_ROOT))

# HF tokenizers prints a warning in every forked child once its thread pool was used (our
# trainer forks worker processes). Saying explicitly "parallelism on" (its default anyway)
# silences that without changing what is measured.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")

from phases.phase0_tokenizer.bpe import SPECIAL_TOKENS, SPLIT_PATTERN, BPETokenizer  # noqa: E402
from phases.common.console import cpu_model  # noqa: E402
from phases.phase0_tokenizer.naive import train_merges_naive  # noqa: E402

DOC_CAP = 10_000                 # nanochat crops each training document to 10,000 characters
TRAIN_TARGET_RATIO = 6.0         # ours within 6x of rustbpe's training wall time...
COMPRESSION_TARGET = 0.01        # ...and within 1% of its bytes/token
NOT_INSTALLED = "not installed"
SKIPPED = "skipped"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Environment


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _optional(module: str):
    try:
        return __import__(module)
    except ImportError:
        return None


def environment() -> dict:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "hardware": {"cpu": cpu_model(), "cores": os.cpu_count(), "usable_cores": usable,
                     "machine": platform.machine(), "os": platform.platform()},
        "software": {"python": platform.python_version(), "rustbpe": _version("rustbpe"),
                     "tiktoken": _version("tiktoken"), "tokenizers": _version("tokenizers"),
                     "regex": _version("regex")},
    }


# ---------------------------------------------------------------------------
# Timing helpers


def best_of(repeats: int, fn, setup=None):
    """(best wall seconds, result of the last call) over ``repeats`` calls of ``fn()``."""
    best, result = float("inf"), None
    for _ in range(max(1, repeats)):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


# ---------------------------------------------------------------------------
# The peers


def train_ours(texts: list[str], vocab_size: int) -> BPETokenizer:
    return BPETokenizer.train(iter(texts), vocab_size)


def train_rust(texts: list[str], vocab_size: int):
    from phases.phase0_tokenizer.compression import train_rustbpe
    return train_rustbpe(iter(texts), vocab_size, SPLIT_PATTERN, num_special=len(SPECIAL_TOKENS))


def train_hf(texts: list[str], vocab_size: int):
    """HF BPE split by our regex, over bytes, with the specials counted in ``vocab_size``."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  min_frequency=0, show_progress=False)
    tok.train_from_iterator(iter(texts), trainer=trainer, length=len(texts))
    return tok


def same_vocab(ours: BPETokenizer, rust) -> bool:
    """Do ours and rustbpe give every (non-special) id the same bytes?"""
    ranks = rust.get_mergeable_ranks()
    items = ranks.items() if isinstance(ranks, dict) else ranks
    theirs = [b for b, _ in sorted(((bytes(b), i) for b, i in items), key=lambda x: x[1])]
    return theirs == list(ours.vocab)


# ---------------------------------------------------------------------------
# Measurements


def utf8_len(texts: list[str]) -> int:
    return sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)


def count_tokens(encode_one=None, encode_batch=None, texts: list[str] = ()) -> int:
    if encode_batch is not None:
        return sum(map(len, encode_batch(texts)))
    return sum(len(encode_one(t)) for t in texts)


def measure_training(texts, vocab_sizes, repeats, peers, skip_hf):
    """Per vocab size: seconds and trained tokenizer for each peer (None if unavailable)."""
    out: dict[int, dict] = {}
    for v in vocab_sizes:
        row: dict = {}
        log(f"training ours at vocab {v} ...")
        row["ours_s"], row["ours"] = best_of(repeats, lambda: train_ours(texts, v))
        log(f"  ours: {row['ours_s']:.2f}s")
        if peers["rustbpe"] is not None:
            log(f"training rustbpe at vocab {v} ...")
            row["rustbpe_s"], row["rustbpe"] = best_of(repeats, lambda: train_rust(texts, v))
            log(f"  rustbpe: {row['rustbpe_s']:.2f}s")
            row["identical"] = same_vocab(row["ours"], row["rustbpe"])
        else:
            row["rustbpe_s"] = row["rustbpe"] = row["identical"] = None
        if peers["tokenizers"] is not None and not skip_hf:
            log(f"training HF tokenizers at vocab {v} ...")
            row["hf_s"], row["hf"] = best_of(repeats, lambda: train_hf(texts, v))
            log(f"  HF tokenizers: {row['hf_s']:.2f}s")
        else:
            row["hf_s"] = row["hf"] = None
        out[v] = row
    return out


def measure_naive(texts_slice, vocab_size, repeats):
    num_merges = vocab_size - 256 - len(SPECIAL_TOKENS)
    log(f"naive trainer on a {sum(map(len, texts_slice)):,}-char slice at vocab {vocab_size} ...")
    naive_s, naive_merges = best_of(repeats, lambda: train_merges_naive(iter(texts_slice), num_merges))
    log(f"  naive: {naive_s:.2f}s")
    ours_s, ours_tok = best_of(repeats, lambda: train_ours(texts_slice, vocab_size))
    log(f"  ours on the same slice: {ours_s:.3f}s")
    return naive_s, ours_s, [tuple(m) for m in naive_merges] == list(ours_tok.merges)


def measure_encoding(val, trained, repeats, peers, skip_hf):
    """MB/s per encoder on ``val`` (dict name -> MB/s or a string reason) and the parity check."""
    mb = utf8_len(val) / 1e6
    ours: BPETokenizer = trained["ours"]
    speeds: dict[str, float | str] = {}
    log(f"encoding the validation shard ({mb:.2f} MB) ...")

    def clear():
        ours._cache.clear()

    s, py_ids = best_of(repeats, lambda: [ours.encode_ordinary_python(t) for t in val], setup=clear)
    speeds["python"] = mb / s

    parity = None
    if peers["tiktoken"] is not None:
        ours.tiktoken_encoding()  # build the Encoding once, outside the clock
        s, fast_ids = best_of(repeats, lambda: [ours.encode_ordinary(t) for t in val])
        speeds["ours_fast"] = mb / s
        s, _ = best_of(repeats, lambda: ours.encode_batch(val))
        speeds["ours_fast_batch"] = mb / s
        parity = fast_ids == py_ids
    else:
        speeds["ours_fast"] = speeds["ours_fast_batch"] = NOT_INSTALLED

    rust = trained.get("rustbpe")
    if rust is not None:
        s, _ = best_of(repeats, lambda: [rust.encode(t) for t in val])
        speeds["rustbpe"] = mb / s
        s, _ = best_of(repeats, lambda: rust.batch_encode(val))
        speeds["rustbpe_batch"] = mb / s
    else:
        speeds["rustbpe"] = speeds["rustbpe_batch"] = NOT_INSTALLED

    hf = trained.get("hf")
    if hf is not None:
        s, _ = best_of(repeats, lambda: [hf.encode(t, add_special_tokens=False) for t in val])
        speeds["hf"] = mb / s
        s, _ = best_of(repeats, lambda: hf.encode_batch(val, add_special_tokens=False))
        speeds["hf_batch"] = mb / s
    else:
        why = SKIPPED if skip_hf and peers["tokenizers"] is not None else NOT_INSTALLED
        speeds["hf"] = speeds["hf_batch"] = why
    return speeds, parity


def measure_compression(val, trained) -> dict[str, float | None]:
    nbytes = utf8_len(val)
    out: dict[str, float | None] = {}
    out["ours"] = nbytes / max(1, count_tokens(encode_batch=trained["ours"].encode_batch, texts=val))
    rust = trained.get("rustbpe")
    out["rustbpe"] = None if rust is None else nbytes / max(1, count_tokens(encode_batch=rust.batch_encode, texts=val))
    hf = trained.get("hf")
    out["hf"] = None if hf is None else nbytes / max(1, sum(
        len(e.ids) for e in hf.encode_batch(val, add_special_tokens=False)))
    return out


# ---------------------------------------------------------------------------
# Report


def fmt_s(x) -> str:
    return f"{x:.2f}" if isinstance(x, (int, float)) else str(x)


def fmt(x, spec=".2f") -> str:
    return format(x, spec) if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x)


def md_table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
                     + [line(r) for r in rows])


def pass_fail(ok) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


# ---------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Benchmark our BPE tokenizer against rustbpe, HF tokenizers and the naive "
                    "trainer (training time, encode speed, compression). The last line of "
                    "stdout is a JSON object with every figure.")
    p.add_argument("--data", metavar="DIR",
                   help="folder of shard_*.parquet files (last shard = validation); "
                        "default: the embedded corpus, built on first use")
    p.add_argument("--max-chars", type=int, default=None,
                   help="train on at most this many characters (default: the whole train split)")
    p.add_argument("--vocab-sizes", type=int, nargs="+", default=None, metavar="V",
                   help="vocabulary sizes, special tokens included (default: 4096 8192); "
                        "the largest is the one the targets and encode speeds use")
    p.add_argument("--repeats", type=int, default=1, help="best of this many runs per timing (default 1)")
    p.add_argument("--skip-hf", action="store_true", help="leave out HF tokenizers")
    p.add_argument("--skip-naive", action="store_true", help="leave out the naive trainer")
    p.add_argument("--naive-chars", type=int, default=None,
                   help="characters in the naive trainer's slice (default 200,000; quick 30,000)")
    p.add_argument("--naive-vocab", type=int, default=None,
                   help="vocab size for the naive comparison (default 1024; quick 512)")
    p.add_argument("--quick", action="store_true",
                   help="small run for smoke tests: ~1 MB of training text, vocab 1024 2048, "
                        "a 300k-char validation sample, a small naive slice")
    args = p.parse_args(argv)
    if args.quick:
        args.max_chars = args.max_chars or 1_000_000
        args.vocab_sizes = args.vocab_sizes or [1024, 2048]
        args.naive_chars = args.naive_chars or 30_000
        args.naive_vocab = args.naive_vocab or 512
        args.val_max_chars = 300_000
    else:
        args.val_max_chars = None
    args.vocab_sizes = sorted(set(args.vocab_sizes or [4096, 8192]))
    args.naive_chars = args.naive_chars or 200_000
    args.naive_vocab = args.naive_vocab or 1024
    minimum = 256 + len(SPECIAL_TOKENS)
    for v in args.vocab_sizes + [args.naive_vocab]:
        if v < minimum:
            p.error(f"vocab sizes must be at least {minimum}, got {v}")
    for name in ("max_chars", "naive_chars", "repeats"):
        if getattr(args, name) is not None and getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    return args


def main(argv=None) -> int:
    from phases.common.console import UserError
    from phases.phase0_tokenizer.corpus import ensure_embedded_corpus
    from phases.phase0_tokenizer.shards import iter_texts

    args = parse_args(argv)
    run_start = time.perf_counter()
    env = environment()
    peers = {name: _optional(name) for name in ("rustbpe", "tokenizers", "tiktoken")}
    for name, module in peers.items():
        if module is None:
            env["software"][name] = None  # metadata without an importable module counts as missing

    try:
        if args.data:
            data_dir = Path(args.data)
        else:
            log("locating the embedded corpus (building it the first time takes about a minute) ...")
            data_dir = ensure_embedded_corpus(show_progress=True).out_dir
        texts = list(iter_texts(data_dir, "train", max_chars=args.max_chars, doc_cap=DOC_CAP))
        val = list(iter_texts(data_dir, "val", max_chars=args.val_max_chars))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # --max-chars only cut something if it was reached
    full_corpus = args.max_chars is None or sum(map(len, texts)) < args.max_chars
    corpus_mb = utf8_len(texts) / 1e6
    val_mb = utf8_len(val) / 1e6
    log(f"train: {corpus_mb:.2f} MB in {len(texts):,} docs; val: {val_mb:.2f} MB in {len(val):,} docs")

    # 1. training
    naive_s = ours_slice_s = naive_same = None
    slice_chars = 0
    if not args.skip_naive:
        budget, texts_slice = args.naive_chars, []
        for t in texts:
            if budget <= 0:
                break
            texts_slice.append(t[:budget])
            budget -= len(texts_slice[-1])
        slice_chars = sum(map(len, texts_slice))
        naive_s, ours_slice_s, naive_same = measure_naive(texts_slice, args.naive_vocab, args.repeats)
    trained = measure_training(texts, args.vocab_sizes, args.repeats, peers, args.skip_hf)
    main_v = args.vocab_sizes[-1]
    top = trained[main_v]

    # 2. encoding (largest vocab)
    speeds, parity = measure_encoding(val, top, args.repeats, peers, args.skip_hf)

    # 3. compression
    log("bytes/token on the validation shard ...")
    bpt = {v: measure_compression(val, trained[v]) for v in args.vocab_sizes}

    # Targets
    ratio = top["ours_s"] / top["rustbpe_s"] if top["rustbpe_s"] else None
    train_ok = None if ratio is None else ratio <= TRAIN_TARGET_RATIO
    comp_gaps = {v: (abs(b["ours"] - b["rustbpe"]) / b["rustbpe"] if b["rustbpe"] else None)
                 for v, b in bpt.items()}
    comp_ok = None if any(g is None for g in comp_gaps.values()) else all(
        g <= COMPRESSION_TARGET for g in comp_gaps.values())
    official = full_corpus and main_v == 8192
    identical = None if any(trained[v]["identical"] is None for v in args.vocab_sizes) else all(
        trained[v]["identical"] for v in args.vocab_sizes)
    wall = time.perf_counter() - run_start

    # ---- report ------------------------------------------------------------
    hw, sw = env["hardware"], env["software"]
    workers = min(8, os.cpu_count() or 1)
    na = lambda mod, skip=False: SKIPPED if (skip and peers[mod] is not None) else NOT_INSTALLED  # noqa: E731
    lines = ["## Tokenizer benchmark", ""]
    lines.append(md_table(["", ""], [
        ["CPU", f"{hw['cpu']} ({hw['cores']} cores reported by os.cpu_count(), {hw['usable_cores']} usable)"],
        ["OS", hw["os"]],
        ["Python", sw["python"]],
        ["rustbpe / tiktoken / tokenizers", " / ".join(sw[k] or NOT_INSTALLED for k in ("rustbpe", "tiktoken", "tokenizers"))],
        ["training text", f"{corpus_mb:.2f} MB, {len(texts):,} docs (cropped at {DOC_CAP:,} chars)"
                          + ("" if full_corpus else f", limited by --max-chars {args.max_chars:,}")],
        ["validation shard", f"{val_mb:.2f} MB, {len(val):,} docs"],
        ["data", str(data_dir)],
        ["repeats", f"best of {args.repeats}"],
    ]))
    lines += ["", f"### Training time (seconds; vocab sizes include the {len(SPECIAL_TOKENS)} special tokens)", ""]
    rows = []
    for v in args.vocab_sizes:
        r = trained[v]
        rows.append([str(v), fmt_s(r["ours_s"]),
                     fmt_s(r["rustbpe_s"]) if r["rustbpe_s"] is not None else na("rustbpe"),
                     fmt_s(r["hf_s"]) if r["hf_s"] is not None else na("tokenizers", args.skip_hf),
                     f"{r['ours_s'] / r['rustbpe_s']:.2f}x" if r["rustbpe_s"] else "n/a",
                     {True: "yes", False: "no", None: "n/a"}[r["identical"]]])
    lines.append(md_table(["vocab", f"ours ({workers} procs)", "rustbpe", "HF tokenizers",
                           "ours / rustbpe", "identical merges"], rows))
    if args.skip_naive:
        lines += ["", "Naive trainer: skipped."]
    else:
        lines += ["", md_table(
            ["naive vs ours (same slice)", "naive", "ours", "naive / ours", "same merges"],
            [[f"{slice_chars:,} chars, vocab {args.naive_vocab}", fmt_s(naive_s), f"{ours_slice_s:.3f}",
              f"{naive_s / ours_slice_s:.0f}x", "yes" if naive_same else "no"]])]
    lines += ["", f"identical merges: {'yes' if identical else 'no' if identical is False else 'n/a (rustbpe not installed)'}"]

    lines += ["", f"### Encode throughput (MB/s, validation shard, vocab {main_v})", ""]
    cores = hw["usable_cores"]
    enc_rows = [
        ("ours, pure Python (cold cache)", "1 thread, one text at a time", "python"),
        ("ours, fast path (tiktoken)", "1 thread, one text at a time", "ours_fast"),
        ("ours, fast path encode_batch", f"tiktoken batch (8 threads requested, {cores} cores)", "ours_fast_batch"),
        ("rustbpe encode", "1 thread, one text at a time", "rustbpe"),
        ("rustbpe batch_encode", f"rayon, {cores} cores", "rustbpe_batch"),
        ("HF tokenizers encode", "1 thread, one text at a time", "hf"),
        ("HF tokenizers encode_batch", f"rayon, {cores} cores", "hf_batch"),
    ]
    lines.append(md_table(["encoder", "threads", "MB/s"],
                          [[name, how, fmt(speeds[key])] for name, how, key in enc_rows]))
    lines += ["", "pure-Python ids == fast-path ids on the validation shard: "
              + {True: "yes", False: "NO", None: "n/a (tiktoken not installed)"}[parity]]

    lines += ["", "### Compression (bytes per token on the validation shard; higher is better)", ""]
    rows = []
    for v in args.vocab_sizes:
        b = bpt[v]
        rows.append([str(v), fmt(b["ours"], ".4f"),
                     fmt(b["rustbpe"], ".4f") if b["rustbpe"] is not None else na("rustbpe"),
                     fmt(b["hf"], ".4f") if b["hf"] is not None else na("tokenizers", args.skip_hf),
                     f"{100 * (b['ours'] / b['rustbpe'] - 1):+.3f}%" if b["rustbpe"] else "n/a"])
    lines.append(md_table(["vocab", "ours", "rustbpe", "HF tokenizers", "ours vs rustbpe"], rows))

    lines += ["", "### Targets", ""]
    lines.append(md_table(["target", "measured", "result"], [
        [f"training within {TRAIN_TARGET_RATIO:g}x of rustbpe (vocab {main_v})",
         f"{ratio:.2f}x" if ratio is not None else "n/a", pass_fail(train_ok)],
        [f"bytes/token within {100 * COMPRESSION_TARGET:g}% of rustbpe (all vocab sizes)",
         ", ".join(f"{v}: {100 * g:.3f}%" for v, g in comp_gaps.items() if g is not None) or "n/a",
         pass_fail(comp_ok)],
    ]))
    if not official:
        lines += ["", "(Indicative only: the training target is defined for vocab 8192 on the full "
                  "embedded corpus, and this run used a different setting.)"]
    lines += ["", f"Whole benchmark: {wall:.1f}s wall."]
    print("\n".join(lines), flush=True)

    def num(x):
        return x if isinstance(x, (int, float)) and not isinstance(x, bool) else None

    result = {
        "vocab_size": main_v,
        "train_s": top["ours_s"],
        "rustbpe_s": top["rustbpe_s"],
        "ratio_vs_rustbpe": ratio,
        "hf_s": top["hf_s"],
        "bytes_per_token": bpt[main_v],
        **{f"train_s_{v}": trained[v]["ours_s"] for v in args.vocab_sizes if v != main_v},
        **{f"rustbpe_s_{v}": trained[v]["rustbpe_s"] for v in args.vocab_sizes if v != main_v},
        **{f"hf_s_{v}": trained[v]["hf_s"] for v in args.vocab_sizes if v != main_v},
        **{f"bytes_per_token_{v}": bpt[v] for v in args.vocab_sizes if v != main_v},
        "naive_slice_s": naive_s,
        "ours_slice_s": ours_slice_s,
        "naive_speedup": (naive_s / ours_slice_s) if naive_s and ours_slice_s else None,
        "naive_slice_chars": slice_chars or None,
        "naive_vocab": None if args.skip_naive else args.naive_vocab,
        "naive_same_merges": naive_same,
        "encode_mb_s": {k: num(v) for k, v in speeds.items()},
        "encode_ids_identical": parity,
        "identical_merges": identical,
        "targets_met": {"train_within_6x": train_ok, "compression_within_1pct": comp_ok,
                        "all": None if train_ok is None or comp_ok is None else (train_ok and comp_ok),
                        "official_setting": official},
        "hardware": hw,
        "software": sw,
        "corpus_mb": corpus_mb,
        "corpus_docs": len(texts),
        "full_corpus": full_corpus,
        "val_mb": val_mb,
        "val_docs": len(val),
        "repeats": args.repeats,
        "quick": args.quick,
        "wall_s": wall,
    }
    print(json.dumps(result, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
