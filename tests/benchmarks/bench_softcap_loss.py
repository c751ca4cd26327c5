"""Benchmark: Phase 1's fused softcap loss against the two-line reference, CPU fp32.

The reference is ``F.cross_entropy(cap * tanh(z / cap), targets, ignore_index=-1)``; ours is
``layers.softcap_cross_entropy(z, targets, cap)``; the floor is ``F.cross_entropy(z, ...)``
with no softcap at all (what a GPT-2-style model such as the Phase 1 benchmark's peer pays).
For each, eager and ``torch.compile``: forward + backward on (N, V) logits (default
2,048 x 8,192, the CPU demo's batch and vocabulary; ``--vocab 32768`` for nanochat's), best
of ``--repeats`` after 2 warm-ups. It also checks that ours gives the reference's loss and
gradient. Last line: one JSON object.

Run: ``python tests/benchmarks/bench_softcap_loss.py [--rows 2048] [--vocab 8192] [--repeats 6]``
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
import torch.nn.functional as F  # noqa: E402

from phases.phase1_transformer.layers import softcap_cross_entropy  # noqa: E402

CAP = 15.0


def reference(z, y):
    return F.cross_entropy(CAP * torch.tanh(z / CAP), y, ignore_index=-1)


def fused(z, y):
    return softcap_cross_entropy(z, y, CAP)


def no_softcap(z, y):
    return F.cross_entropy(z, y, ignore_index=-1)


def time_it(fn, z0, y, repeats: int) -> tuple[float, float, torch.Tensor]:
    z = z0.clone().requires_grad_(True)
    times = []
    for _ in range(repeats + 2):
        t0 = time.perf_counter()
        loss = fn(z, y)
        loss.backward()
        times.append(time.perf_counter() - t0)
        grad, z.grad = z.grad, None
    return min(times[2:]), loss.item(), grad


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=6)
    args = ap.parse_args()
    torch.manual_seed(0)
    z0 = torch.randn(args.rows, args.vocab) * 3                 # (N, V) raw logits
    y = torch.randint(0, args.vocab, (args.rows,))
    y[::7] = -1                                                 # some ignored targets
    out = {"rows": args.rows, "vocab": args.vocab, "dtype": "float32", "threads": torch.get_num_threads(),
           "torch": torch.__version__}
    ref_loss, ref_grad = None, None
    for mode in ("eager", "compiled"):
        for name, fn in (("reference", reference), ("fused", fused), ("no_softcap", no_softcap)):
            s, loss, grad = time_it(torch.compile(fn) if mode == "compiled" else fn, z0, y, args.repeats)
            if ref_loss is None:
                ref_loss, ref_grad = loss, grad
            out[f"{name}_{mode}_ms"] = s * 1e3
            if name != "no_softcap":                             # another loss: nothing to compare
                out[f"{name}_{mode}_max_grad_diff"] = (grad - ref_grad).abs().max().item()
                out[f"{name}_{mode}_loss_diff"] = abs(loss - ref_loss)
            print(f"{name:9s} {mode:8s} {s * 1e3:8.1f} ms  loss {loss:.6f}", file=sys.stderr, flush=True)
    for mode in ("eager", "compiled"):
        out[f"speedup_{mode}"] = out[f"reference_{mode}_ms"] / out[f"fused_{mode}_ms"]
        out[f"fused_over_no_softcap_{mode}"] = out[f"fused_{mode}_ms"] / out[f"no_softcap_{mode}_ms"]
    print(f"fused / reference speed-up: eager {out['speedup_eager']:.2f}x, compiled {out['speedup_compiled']:.2f}x; "
          f"fused costs {out['fused_over_no_softcap_eager']:.2f}x (eager), "
          f"{out['fused_over_no_softcap_compiled']:.2f}x (compiled) a loss without softcap")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
