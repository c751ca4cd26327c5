"""Benchmark: Muon's orthogonalisation, textbook Newton-Schulz vs Gram Newton-Schulz, CPU fp32.

For every stack of same-shape matrices that ``MuonAdamW`` orthogonalises at a model size
(the CPU demo's d4/w256 and nanochat's runcpu d6/w384 by default), one run times
``orthogonalize(G, 5, "polar_express", method=...)`` with ``method="standard"`` (iterate on
the full X) and ``method="gram"`` (iterate on the m x m Gram matrix, one restart), best of
``--repeats`` after one warm-up, the two alternating. It also reports the multiply-add
count of each (``muon.ns_macs``), which one ``method="auto"`` picks,
and how far the two results are apart (relative Frobenius norm). The matrices are random
(the timing depends only on the shapes).

Last line of output: one JSON object with ``rows`` (one per stack), ``ms_auto``,
``ms_standard`` (all stacks of a model size added up) and the hardware.

Run: ``python tests/benchmarks/bench_newton_schulz.py [--sizes demo d6] [--repeats 9]``
What it leaves out: GPUs (bf16 Newton-Schulz, symmetric GEMM kernels), the rest of the step.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from phases.common.console import cpu_model  # noqa: E402
from phases.phase3_optimizers.muon import ns_macs, orthogonalize, pick_method  # noqa: E402

# (count, rows, cols) of every Muon stack: attention's square matrices (q, k, v, o per layer),
# the MLP's c_fc (4C x C) and c_proj (C x 4C), for depth x width.
SIZES = {
    "demo": {"depth": 4, "width": 256},
    "d6": {"depth": 6, "width": 384},
    "quick": {"depth": 2, "width": 64},
}


def stacks(depth: int, width: int) -> list[tuple[int, int, int]]:
    return [(4 * depth, width, width), (depth, 4 * width, width), (depth, width, 4 * width)]


def time_ms(G: torch.Tensor, method: str) -> float:
    t0 = time.perf_counter()
    orthogonalize(G, 5, "polar_express", method=method)
    return 1e3 * (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["demo", "d6"], choices=list(SIZES))
    ap.add_argument("--repeats", type=int, default=9, help="timed calls per method and stack (best is kept)")
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    rows, totals = [], {}
    g = torch.Generator().manual_seed(0)
    for size in args.sizes:
        for count, r, c in stacks(**SIZES[size]):
            G = torch.randn(count, r, c, generator=g)                     # (K, r, c)
            m, n = min(r, c), max(r, c)
            auto = pick_method("auto", m, n, 5)
            times = {"standard": [], "gram": []}
            for method in times:                                         # warm-up
                time_ms(G, method)
            for _ in range(args.repeats):                                # alternate the two
                for method in times:
                    times[method].append(time_ms(G, method))
            std, gram = min(times["standard"]), min(times["gram"])
            a, b = orthogonalize(G, method="standard"), orthogonalize(G, method="gram")
            row = {"size": size, "stack": f"{count} x {r} x {c}", "standard_ms": std, "gram_ms": gram,
                   "speedup": std / gram, "auto": auto,
                   "mmacs_standard": count * ns_macs("standard", m, n, 5) / 1e6,
                   "mmacs_gram": count * ns_macs("gram", m, n, 5) / 1e6,
                   "rel_diff": ((a - b).norm() / a.norm()).item()}
            rows.append(row)
            t = totals.setdefault(size, {"ms_standard": 0.0, "ms_auto": 0.0})
            t["ms_standard"] += std
            t["ms_auto"] += gram if auto == "gram" else std
            print(f"[ns] {size} {row['stack']}: standard {std:.1f} ms, gram {gram:.1f} ms "
                  f"({row['speedup']:.2f}x), auto -> {auto}", file=sys.stderr, flush=True)
    print("| size | stack (K x rows x cols) | textbook ms | Gram ms | textbook / Gram | M multiply-adds "
          "(textbook / Gram) | auto picks | relative difference |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['size']} | {r['stack']} | {r['standard_ms']:.1f} | {r['gram_ms']:.1f} | {r['speedup']:.2f}x | "
              f"{r['mmacs_standard']:,.0f} / {r['mmacs_gram']:,.0f} | {r['auto']} | {r['rel_diff']:.1e} |")
    for size, t in totals.items():
        print(f"\n{size}: all stacks {t['ms_standard']:.1f} ms textbook, {t['ms_auto']:.1f} ms with auto "
              f"({t['ms_standard'] / t['ms_auto']:.2f}x)")
    print(json.dumps({"rows": rows, "totals": totals, "repeats": args.repeats,
                      "hardware": {"cpu": cpu_model(), "threads": torch.get_num_threads()},
                      "torch": torch.__version__, "dtype": "float32"}))


if __name__ == "__main__":
    main()
