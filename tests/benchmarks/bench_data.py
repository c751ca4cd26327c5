"""Benchmark: the Phase 5 loader's speed against what training consumes, and the packers' costs.

1. **Loader tokens/s** with 1 and 2 tokenizer threads: ``PackedLoader`` on the embedded
   corpus at the demo's batch shape (B=8, T=256 from ``examples/cpu_demo.toml``), timed
   over ``--loader-seconds`` after its first batch (start-up: opening shards, filling the
   1,000-document buffer; reported separately).
2. **Training tokens/s**: real optimizer steps (forward, backward, AdamW) of the demo model
   (depth 4, width 256, T 256, batch 8) on batches from the loader; the first step is
   excluded. The target: the loader delivers at least 10x what training consumes.
3. **Packing**: utilisation, cropped fraction and the share of rows starting with BOS for
   best-fit, greedy, padding and concatenation at T = 512 and 2048, on the first documents
   of the embedded corpus' training shards.

Last line of stdout: one JSON object with ``loader_tok_per_s`` (2 threads),
``loader_tok_per_s_1thread``, ``train_tok_per_s``, ``ratio``, ``crop_fraction_2048`` (best-fit),
the packing table and the hardware. ``--quick`` shrinks everything to a few seconds (a tiny
model, few documents) for the smoke test; its figures are not the ones to report.

Run: ``python tests/benchmarks/bench_data.py [--quick] [--tokenizer DIR] [--data DIR]``
What it leaves out: GPUs, several processes, downloaded shards (pass ``--data`` to use them).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from phases.phase0_tokenizer.bpe import FILENAME, BPETokenizer  # noqa: E402
from phases.common.console import cpu_model  # noqa: E402
from phases.common.paths import tokenizer_dir  # noqa: E402
from phases.phase0_tokenizer.corpus import ensure_embedded_corpus  # noqa: E402
from phases.phase0_tokenizer.shards import iter_texts  # noqa: E402
from phases.phase1_transformer.model import GPT  # noqa: E402
from phases.phase5_data.pretrain import load_config  # noqa: E402  (the demo config has every phase's keys)
from phases.phase5_data.loader import PackedLoader  # noqa: E402
from phases.phase5_data.packing import STRATEGIES, pack  # noqa: E402
from phases.phase5_data.stream import encode_docs, split_paths  # noqa: E402


def get_tokenizer(path: Path | None, data_dir: Path, quick: bool, tmp: str) -> tuple[BPETokenizer, str]:
    if path is not None:
        return BPETokenizer.load(path), str(path)
    default = tokenizer_dir()
    if (default / FILENAME).is_file() and not quick:
        return BPETokenizer.load(default), str(default)
    vocab, chars = (512, 300_000) if quick else (8192, 4_000_000)  # the demo trains vocab 8192
    tok = BPETokenizer.train(iter_texts(data_dir, "train", max_chars=chars), vocab_size=vocab)
    tok.save(Path(tmp) / "tok")
    return tok, f"trained here: vocab {vocab} on {chars:,} chars"


def loader_speed(paths, tok, B: int, T: int, threads: int, seconds: float) -> dict:
    t0 = time.perf_counter()
    loader = PackedLoader(paths, tok, B, T, threads=threads)
    loader.next_batch()
    startup = time.perf_counter() - t0
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        loader.next_batch()
        n += 1
    dt = time.perf_counter() - t0
    loader.close()
    return {"threads": threads, "batches": n, "tok_per_s": n * B * T / dt, "startup_s": startup}


def train_speed(cfg, tok, paths, steps: int) -> dict:
    model = GPT.build(cfg.model_config(tok.vocab_size), seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = PackedLoader(paths, tok, cfg.device_batch_size, cfg.sequence_len, threads=1)
    times = []
    for _ in range(steps + 1):
        x, y = loader.next_batch()
        t0 = time.perf_counter()
        model(x, targets=y).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    loader.close()
    dt = sum(times[1:])  # the first step warms up allocators and kernels
    return {"steps": steps, "tok_per_s": steps * cfg.device_batch_size * cfg.sequence_len / dt,
            "step_s": dt / steps}


def packing_table(paths, tok, max_docs: int) -> list[dict]:
    texts = []
    for p in paths:
        import pyarrow.parquet as pq
        texts += pq.read_table(p, columns=["text"]).column("text").to_pylist()
        if len(texts) >= max_docs:
            break
    docs = encode_docs(tok, texts[:max_docs])
    rows = []
    for T in (512, 2048):
        for strategy in STRATEGIES:
            _, st = pack(docs, T + 1, strategy, buffer_size=1000, bos=tok.bos_token_id)
            rows.append({"T": T, "strategy": strategy, "rows": st.rows, "utilisation": st.utilisation,
                         "crop_fraction": st.crop_fraction, "bos_aligned": st.bos_aligned})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="seconds: tiny model and data (smoke test)")
    ap.add_argument("--tokenizer", type=Path, help="tokenizer folder (default <base>/tokenizer, else trained here)")
    ap.add_argument("--data", type=Path, help="shard folder (default: the embedded corpus)")
    ap.add_argument("--config", type=Path, default=REPO / "examples" / "cpu_demo.toml")
    ap.add_argument("--loader-seconds", type=float, default=None)
    ap.add_argument("--train-steps", type=int, default=None)
    args = ap.parse_args()
    data = args.data or Path(ensure_embedded_corpus(show_progress=not args.quick).out_dir)
    paths = split_paths(data, "train")
    overrides = {"depth": "2", "aspect_ratio": "32", "head_dim": "32", "sequence_len": "128",
                 "device_batch_size": "4"} if args.quick else {}
    cfg = load_config(args.config, overrides)
    seconds = args.loader_seconds or (0.5 if args.quick else 5.0)
    steps = args.train_steps or (2 if args.quick else 4)
    with tempfile.TemporaryDirectory() as tmp:
        tok, tok_note = get_tokenizer(args.tokenizer, data, args.quick, tmp)
        B, T = cfg.device_batch_size, cfg.sequence_len
        loaders = [loader_speed(paths, tok, B, T, th, seconds) for th in (1, 2)]
        train = train_speed(cfg, tok, paths, steps)
        table = packing_table(paths, tok, 1500 if args.quick else 20_000)
    best_2048 = next(r for r in table if r["T"] == 2048 and r["strategy"] == "best_fit")
    print("\n| loader threads | tok/s | start-up s |\n|---|---|---|")
    for r in loaders:
        print(f"| {r['threads']} | {r['tok_per_s']:,.0f} | {r['startup_s']:.2f} |")
    print(f"\ntraining (depth {cfg.depth}, B {B}, T {T}, vocab {tok.vocab_size}): "
          f"{train['tok_per_s']:,.0f} tok/s ({train['step_s'] * 1000:.0f} ms/step)")
    print(f"loader (2 threads) / training = {loaders[1]['tok_per_s'] / train['tok_per_s']:,.0f}x (target >= 10x)")
    print("\n| T | strategy | rows | utilisation | cropped | rows starting with BOS |\n|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['T']} | {r['strategy']} | {r['rows']:,} | {r['utilisation']:.1%} | {r['crop_fraction']:.1%} "
              f"| {r['bos_aligned']:.1%} |")
    print(f"hardware: {cpu_model()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}; "
          f"tokenizer: {tok_note}")
    report = {
        "loader_tok_per_s": loaders[1]["tok_per_s"], "loader_tok_per_s_1thread": loaders[0]["tok_per_s"],
        "loader_startup_s": loaders[1]["startup_s"], "train_tok_per_s": train["tok_per_s"],
        "ratio": loaders[1]["tok_per_s"] / train["tok_per_s"], "target_met": loaders[1]["tok_per_s"] >= 10 * train["tok_per_s"],
        "crop_fraction_2048": best_2048["crop_fraction"], "packing": table, "quick": args.quick,
        "config": {"depth": cfg.depth, "batch": B, "seq_len": T, "vocab": tok.vocab_size},
        "hardware": {"cpu": cpu_model(), "threads": torch.get_num_threads()}, "torch": torch.__version__,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
