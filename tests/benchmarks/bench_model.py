"""Model benchmark: our GPT's training throughput and MFU on CPU, next to rasbt's GPTModel.

What it measures, in one process, on CPU in float32:

1. **The matmul peak** of this machine: large fp32 ``torch.mm`` (2048x2048 and 4096x4096,
   best of a few repeats each, with the benchmark's thread count), measured at the start
   and again after every configuration; the peak is the highest FLOP/s seen at any point.
   MFU is reported against this measured peak, not against a data-sheet number.
2. **A training step** per configuration x model x (eager, ``torch.compile``): forward with
   targets -> mean cross-entropy loss -> ``loss.backward()`` -> ``zero_grad(set_to_none=True)``
   (no optimizer). Warm-up steps come first (compilation happens there; its cost is
   reported separately as ``first step - best step``), then ``--steps`` timed steps (10 by
   default) per model, ours and the peer *alternating* so that load from other processes
   falls on both alike; **tokens/s and MFU use the best (fastest) step**, the median is
   printed next to it. The machine is shared, so the best step is the least disturbed one.
3. **MFU** = FLOPs per token x tokens/s / measured peak. For our model the FLOPs per token
   are ``GPT.estimate_flops()`` (6 x matmul weights + 12 x L x H x D x T). For the peer the
   same accounting is applied to its own modules (6 x every ``nn.Linear`` weight, out_head
   included, + 12 x L x H x D x T), so the two MFUs are comparable.

The peer is ``llms_from_scratch.ch04.GPTModel`` (the code of Sebastian Raschka's book "Build
a Large Language Model From Scratch", PyPI ``llms-from-scratch``) built at the same width,
depth, heads, vocabulary and sequence length, with ``drop_rate=0`` and ``qkv_bias=False``;
its loss is the same ``F.cross_entropy`` inside the timed (and compiled) module. When it is
not installed (``pip install --no-deps llms-from-scratch``), its column shows
"not installed" and everything else still runs.

Configurations (all window pattern "L"; the same batch for both models). The w384 configs
use 4 rows of 512 tokens (a step of ~3 s on a 2-core CPU): nanochat's CPU run trains with
32 rows per step, and at a single row fixed per-step costs, such as the dense gradients of
the 32768-row embedding tables, weigh several times more than in any real run (``--batch 1``
measures that case):

- ``cpu-demo``: ``preset("cpu-demo")``: depth 4, width 256, 4 heads of 64, T=256, vocab 8192, B=4;
- ``d4-w384``: depth 4, width 384, 6 heads of 64, T=512, vocab 32768, B=4;
- ``runcpu-d6``: depth 6, the same width, T and vocab (nanochat's runcpu config), B=4;
- ``quick``: depth 2, width 128, T=64, vocab 512, B=4 (only with ``--quick``).

It prints markdown tables (hardware and software stated), PASS/FAIL for the issue's targets
(with torch.compile: MFU >= 55% at runcpu-d6, MFU >= 35% at cpu-demo, tokens/s not below
the peer's at runcpu-d6) and, as the **last line of stdout**, one JSON object with every
figure. Progress goes to stderr. The exit status is 0 whether or not the targets are met:
this is a measurement, not a test.

Run from the repository root:

    python tests/benchmarks/bench_model.py                      # everything (~10-15 minutes on 2 cores)
    python tests/benchmarks/bench_model.py --configs runcpu-d6  # one configuration
    python tests/benchmarks/bench_model.py --malloc-hugepages   # large allocations on huge pages
    python tests/benchmarks/bench_model.py --quick --no-compile # seconds (the smoke test)
    python tests/benchmarks/bench_model.py --help

What it leaves out: GPUs (none in this session; bf16, FlashAttention and CUDA graphs are
GPU matters), the optimizer step (Muon/AdamW cost is Phase 3's), the data loader, memory
use, bf16 on CPU, batch sizes other than the one per configuration (``--batch`` overrides),
and compile modes other than the default. Compile times are those of inductor's on-disk
cache as found (a second run compiles faster); ``--cold-compile`` uses a fresh cache. The
allocator is left as it is: every step allocates its large tensors (logits, gradients) afresh
and pays the page faults; ``--malloc-hugepages`` shows what that costs.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Runnable as a plain script from anywhere: make the repository root importable.
REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:   # this checkout's phases, even if another one is installed
    sys.path.insert(0, str(REPO_ROOT))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from phases.common.console import cpu_model  # noqa: E402
from phases.phase1_transformer.config import GPTConfig, preset  # noqa: E402
from phases.phase1_transformer.model import GPT  # noqa: E402

MFU_TARGET = 0.55        # compiled, runcpu-d6
MFU_DEMO_TARGET = 0.35   # compiled, cpu-demo
HEADLINE = "runcpu-d6"
DEMO = "cpu-demo"
NOT_INSTALLED = "not installed"
PEAK_SIZES = (2048, 4096)


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Configurations


@dataclass(frozen=True)
class BenchConfig:
    name: str
    gpt: GPTConfig
    batch: int

    @property
    def tokens_per_step(self) -> int:
        return self.batch * self.gpt.sequence_len


def bench_configs() -> dict[str, BenchConfig]:
    w384 = dict(vocab_size=32768, sequence_len=512, head_dim=64, window_pattern="L")
    return {
        "cpu-demo": BenchConfig("cpu-demo", preset("cpu-demo"), batch=4),
        "d4-w384": BenchConfig("d4-w384", GPTConfig.from_depth(4, aspect_ratio=96, **w384), batch=4),
        "runcpu-d6": BenchConfig("runcpu-d6", preset("runcpu-d6"), batch=4),
        "quick": BenchConfig("quick", GPTConfig.from_depth(2, vocab_size=512, sequence_len=64,
                                                           head_dim=64, window_pattern="L"), batch=4),
    }


# ---------------------------------------------------------------------------
# Environment


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment() -> dict:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        isa = torch.backends.cpu.get_cpu_capability()
    except Exception:  # older torch
        isa = None
    return {
        "hardware": {"cpu": cpu_model(), "cores": os.cpu_count(), "usable_cores": usable,
                     "threads": torch.get_num_threads(), "isa": isa, "machine": platform.machine(),
                     "os": platform.platform()},
        "software": {"python": platform.python_version(), "torch": torch.__version__,
                     "llms_from_scratch": _version("llms-from-scratch"),
                     "glibc_tunables": os.environ.get("GLIBC_TUNABLES")},
    }


# ---------------------------------------------------------------------------
# The matmul peak


def measure_peak(sizes=PEAK_SIZES, repeats: int = 4) -> dict[int, float]:
    """Best FLOP/s of an fp32 (n x n) @ (n x n) ``torch.mm`` per size."""
    out = {}
    gen = torch.Generator().manual_seed(0)
    for n in sizes:
        a = torch.randn(n, n, generator=gen)
        b = torch.randn(n, n, generator=gen)
        c = torch.empty(n, n)
        torch.mm(a, b, out=c)  # warm-up (allocations, thread pool)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(a, b, out=c)
            best = min(best, time.perf_counter() - t0)
        out[n] = 2 * n ** 3 / best
    return out


class PeakTracker:
    """Every peak measurement of the run; the peak is the maximum FLOP/s seen."""

    def __init__(self, sizes, repeats):
        self.sizes, self.repeats, self.samples = sizes, repeats, []

    def measure(self, when: str) -> None:
        res = measure_peak(self.sizes, self.repeats)
        self.samples.append({"when": when, **{f"mm{n}": v for n, v in res.items()}})
        log(f"matmul peak ({when}): " + ", ".join(f"{n}: {v / 1e9:.1f} GFLOP/s" for n, v in res.items()))

    @property
    def peak(self) -> float:
        return max(v for s in self.samples for k, v in s.items() if k != "when")


# ---------------------------------------------------------------------------
# The models


def build_ours(cfg: GPTConfig) -> tuple[nn.Module, float]:
    model = GPT.build(cfg, device="cpu", dtype=torch.float32, seed=0)
    return model, float(model.estimate_flops())


def peer_available() -> bool:
    try:
        import llms_from_scratch.ch04  # noqa: F401
    except Exception:
        return False
    return True


class PeerWithLoss(nn.Module):
    """rasbt's GPTModel plus the same mean cross-entropy, so the loss is timed (and compiled) too."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        from llms_from_scratch.ch04 import GPTModel

        self.gpt = GPTModel({
            "vocab_size": cfg.vocab_size, "context_length": cfg.sequence_len, "emb_dim": cfg.n_embd,
            "n_heads": cfg.n_head, "n_layers": cfg.n_layer, "drop_rate": 0.0, "qkv_bias": False,
        })

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self.gpt(idx)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def peer_flops_per_token(model: nn.Module, cfg: GPTConfig) -> float:
    """Our accounting applied to the peer: 6 x every nn.Linear weight + 12 * L * H * D * T."""
    matmul = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    return 6.0 * matmul + 12.0 * cfg.n_layer * cfg.n_head * cfg.head_dim * cfg.sequence_len


def build_peer(cfg: GPTConfig) -> tuple[nn.Module, float]:
    torch.manual_seed(0)
    model = PeerWithLoss(cfg)
    return model, peer_flops_per_token(model, cfg)


# ---------------------------------------------------------------------------
# Timing one cell (config x model x compiled)


def short_reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


class Runner:
    """One model of one cell: its (maybe compiled) step function and its step times."""

    def __init__(self, kind: str, bc: BenchConfig, compiled: bool):
        self.kind, self.bc, self.compiled = kind, bc, compiled
        self.label = f"{bc.name} / {kind} / {'compiled' if compiled else 'eager'}"
        self.cell = {"config": bc.name, "model": kind, "compiled": compiled, "batch": bc.batch,
                     "seq": bc.gpt.sequence_len, "status": "ok"}
        self.model = self.fn = None
        self.warm: list[float] = []
        self.times: list[float] = []

    @property
    def alive(self) -> bool:
        return self.cell["status"] == "ok"

    def fail(self, prefix: str, exc: BaseException) -> None:
        self.cell["status"] = f"{prefix}: {short_reason(exc)}"
        log(f"{self.label}: {self.cell['status']}")
        self.model = self.fn = None

    def build(self) -> None:
        cfg = self.bc.gpt
        try:
            self.model, flops = build_ours(cfg) if self.kind == "ours" else build_peer(cfg)
        except Exception as exc:  # noqa: BLE001
            return self.fail("build failed", exc)
        self.model.train()
        self.fn = torch.compile(self.model) if self.compiled else self.model
        self.cell["flops_per_token"] = flops
        self.cell["params"] = sum(p.numel() for p in self.model.parameters())
        gen = torch.Generator().manual_seed(1234)
        shape = (self.bc.batch, cfg.sequence_len)
        self.idx = torch.randint(0, cfg.vocab_size, shape, generator=gen)
        self.targets = torch.randint(0, cfg.vocab_size, shape, generator=gen)

    def step(self) -> float:
        """One training step: forward with targets, backward, zero the grads (set to None)."""
        t0 = time.perf_counter()
        loss = self.fn(self.idx, self.targets)
        loss.backward()
        self.model.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        value = loss.detach().item()
        if not math.isfinite(value):
            raise RuntimeError(f"non-finite loss {value}")
        return dt

    def warm_up(self, n: int) -> None:
        try:
            self.warm = [self.step() for _ in range(max(1, n))]
        except Exception as exc:  # noqa: BLE001
            self.fail("compile failed" if self.compiled else "failed", exc)

    def timed_step(self) -> None:
        try:
            self.times.append(self.step())
        except Exception as exc:  # noqa: BLE001
            self.fail("failed", exc)

    def finish(self) -> dict:
        cell = self.cell
        if self.alive and self.times:
            best, median = min(self.times), statistics.median(self.times)
            cell.update(best_s=best, median_s=median, first_step_s=self.warm[0], steps=len(self.times),
                        compile_s=max(0.0, self.warm[0] - best) if self.compiled else None)
            cell["tok_per_s"] = self.bc.tokens_per_step / best
            cell["tok_per_s_median"] = self.bc.tokens_per_step / median
            cell["flops_per_s"] = cell["flops_per_token"] * cell["tok_per_s"]
            log(f"{self.label}: {cell['tok_per_s']:,.0f} tok/s, {best * 1e3:.0f} ms/step best "
                f"({median * 1e3:.0f} median)" + (f", compile {cell['compile_s']:.1f}s" if self.compiled else ""))
        self.model = self.fn = None
        return cell


def run_cells(kinds: list[str], bc: BenchConfig, compiled: bool, warmup: int, steps: int) -> list[dict]:
    """Build and warm up every model of the cell, then time their steps *alternately*.

    Alternating (ours, peer, ours, peer, ...) spreads the load of a shared machine over both
    models evenly, so their ratio is fairer than with back-to-back blocks of steps.
    """
    runners = [Runner(kind, bc, compiled) for kind in kinds]
    for r in runners:
        r.build()
        if r.alive:
            log(f"{r.label}: B={bc.batch} T={bc.gpt.sequence_len}, "
                f"{r.cell['flops_per_token'] / 1e6:.1f} MFLOP/token, warming up ...")
            r.warm_up(warmup)
    for _ in range(max(1, steps)):
        for r in runners:
            if r.alive:
                r.timed_step()
    cells = [r.finish() for r in runners]
    if compiled:
        torch._dynamo.reset()
    return cells


# ---------------------------------------------------------------------------
# Reporting


def fmt_cell_status(cell: dict | None) -> str:
    if cell is None:
        return "not run"
    return cell["status"]


def markdown(env: dict, peak: PeakTracker, cells: list[dict], configs: list[BenchConfig],
             peer_note: str | None, args) -> str:
    hw, sw = env["hardware"], env["software"]
    P = peak.peak
    lines = [
        "## Model benchmark: forward+backward training step, CPU fp32",
        "",
        f"- CPU: {hw['cpu']} ({hw['cores']} cores, {hw['usable_cores']} usable, ISA {hw['isa']}); "
        f"torch threads: {hw['threads']}",
        f"- torch {sw['torch']}, Python {sw['python']}, dtype float32; peer llms-from-scratch "
        f"{sw['llms_from_scratch'] or NOT_INSTALLED}"
        + (f"; GLIBC_TUNABLES={sw['glibc_tunables']}" if sw["glibc_tunables"] else ""),
        f"- matmul peak (fp32 torch.mm, max over {len(peak.samples)} measurements of "
        f"{' and '.join(f'{n}x{n}' for n in peak.sizes)}): **{P / 1e9:.1f} GFLOP/s**; samples: "
        + "; ".join(f"{s['when']}: " + ", ".join(f"{v / 1e9:.0f}" for k, v in s.items() if k != "when")
                    for s in peak.samples) + " GFLOP/s",
        f"- timing: {args.warmup} warm-up step(s), then {args.steps} steps per model, ours and the peer "
        f"alternating; tokens/s and MFU from the best step (median ms shown too); "
        f"compile s = first step - best step",
        "",
        "| config | model | mode | B x T | MFLOP/token | tokens/s | ms/step best | ms/step median | MFU | compile s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell in cells:
        mode = "compiled" if cell["compiled"] else "eager"
        bt = f"{cell['batch']} x {cell['seq']}"
        fl = f"{cell['flops_per_token'] / 1e6:.1f}" if cell.get("flops_per_token") else "-"
        if cell["status"] != "ok":
            lines.append(f"| {cell['config']} | {cell['model']} | {mode} | {bt} | {fl} | "
                         f"{cell['status']} | | | | |")
            continue
        comp = f"{cell['compile_s']:.1f}" if cell["compile_s"] is not None else "-"
        lines.append(
            f"| {cell['config']} | {cell['model']} | {mode} | {bt} | {fl} | {cell['tok_per_s']:,.0f} | "
            f"{cell['best_s'] * 1e3:.0f} | {cell['median_s'] * 1e3:.0f} | {cell['flops_per_s'] / P:.1%} | {comp} |")
    if peer_note:
        lines.append(f"| (all) | peer | - | - | - | {peer_note} | | | | |")
    lines += ["", "| config | mode | ours tokens/s | peer tokens/s | ours / peer | ours MFU | peer MFU |",
              "|---|---|---|---|---|---|---|"]
    for bc in configs:
        for compiled in (False, True):
            o, p = find(cells, bc.name, "ours", compiled), find(cells, bc.name, "peer", compiled)
            if o is None and p is None:
                continue
            mode = "compiled" if compiled else "eager"
            ot = f"{o['tok_per_s']:,.0f}" if ok(o) else fmt_cell_status(o)
            pt = f"{p['tok_per_s']:,.0f}" if ok(p) else (peer_note or fmt_cell_status(p))
            ratio = f"{o['tok_per_s'] / p['tok_per_s']:.2f}x" if ok(o) and ok(p) else "-"
            om = f"{o['flops_per_s'] / P:.1%}" if ok(o) else "-"
            pm = f"{p['flops_per_s'] / P:.1%}" if ok(p) else "-"
            lines.append(f"| {bc.name} | {mode} | {ot} | {pt} | {ratio} | {om} | {pm} |")
    return "\n".join(lines)


def find(cells, config, model, compiled):
    for c in cells:
        if c["config"] == config and c["model"] == model and c["compiled"] == compiled:
            return c
    return None


def ok(cell) -> bool:
    return cell is not None and cell["status"] == "ok"


def summary(cells: list[dict], peak: float, headline: str, demo: str) -> dict:
    """The headline figures: compiled ones, and the eager ones with an ``_eager`` suffix."""
    out: dict = {}
    for compiled, suffix in ((True, ""), (False, "_eager")):
        o, p, d = (find(cells, headline, "ours", compiled), find(cells, headline, "peer", compiled),
                   find(cells, demo, "ours", compiled))
        out["tok_per_s" + suffix] = o["tok_per_s"] if ok(o) else None
        out["mfu" + suffix] = o["flops_per_s"] / peak if ok(o) else None
        out["peer_tok_per_s" + suffix] = p["tok_per_s"] if ok(p) else None
        out["peer_mfu" + suffix] = p["flops_per_s"] / peak if ok(p) else None
        out["ratio_vs_peer" + suffix] = o["tok_per_s"] / p["tok_per_s"] if ok(o) and ok(p) else None
        out["mfu_demo" + suffix] = d["flops_per_s"] / peak if ok(d) else None
        out["tok_per_s_demo" + suffix] = d["tok_per_s"] if ok(d) else None
    return out


def targets(s: dict, quick: bool) -> dict:
    """PASS/FAIL of the issue's three targets (compiled figures); None where not measured."""
    def check(value, bound):
        if quick or value is None:
            return None
        return bool(value >= bound)

    t = {"mfu_ge_55pct": check(s["mfu"], MFU_TARGET),
         "mfu_demo_ge_35pct": check(s["mfu_demo"], MFU_DEMO_TARGET),
         "not_slower_than_peer": check(s["ratio_vs_peer"], 1.0)}
    measured = [v for v in t.values() if v is not None]
    t["all"] = all(v is True for v in t.values()) if measured else None
    return t


def targets_text(s: dict, t: dict) -> str:
    def word(v):
        return "n/a (not measured)" if v is None else ("PASS" if v else "FAIL")

    def pct(v):
        return "-" if v is None else f"{v:.1%}"

    ratio = "-" if s["ratio_vs_peer"] is None else f"{s['ratio_vs_peer']:.2f}x"
    return "\n".join([
        "", "### Targets (with torch.compile)", "",
        f"- MFU >= 55% at {HEADLINE}: {pct(s['mfu'])} -> {word(t['mfu_ge_55pct'])}",
        f"- MFU >= 35% at {DEMO}: {pct(s['mfu_demo'])} -> {word(t['mfu_demo_ge_35pct'])}",
        f"- not slower than the peer at {HEADLINE}: ours/peer {ratio} -> {word(t['not_slower_than_peer'])}",
        f"- all: {word(t['all'])}",
        "",
    ])


# ---------------------------------------------------------------------------
# Main


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Training-step tokens/s and MFU of our GPT vs llms-from-scratch's GPTModel (CPU, fp32).")
    p.add_argument("--configs", default=None,
                   help="comma-separated among cpu-demo, d4-w384, runcpu-d6, quick "
                        "(default: cpu-demo,d4-w384,runcpu-d6; with --quick: quick)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per model and cell (default 10; 3 with --quick)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps per cell (default 2; 1 with --quick)")
    p.add_argument("--batch", type=int, default=None, help="override the batch size of every config")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    p.add_argument("--no-compile", action="store_true", help="eager only")
    p.add_argument("--skip-peer", action="store_true", help="leave out llms-from-scratch's GPTModel")
    p.add_argument("--quick", action="store_true",
                   help="tiny config, few steps, small peak measurement (the smoke test; targets not evaluated)")
    p.add_argument("--cold-compile", action="store_true",
                   help="use a fresh inductor cache so compile times are cold")
    p.add_argument("--malloc-hugepages", action="store_true",
                   help="re-run under GLIBC_TUNABLES=glibc.malloc.hugetlb=1 (glibc >= 2.35): large tensors get "
                        "transparent huge pages, so fresh allocations cost far fewer page faults")
    return p.parse_args(argv)


def reexec_with_hugepages() -> None:
    """glibc reads its tunables at start-up only, so set the variable and start again."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" in tunables:
        return
    env = dict(os.environ, GLIBC_TUNABLES=":".join(t for t in (tunables, "glibc.malloc.hugetlb=1") if t))
    log("re-running under GLIBC_TUNABLES=" + env["GLIBC_TUNABLES"])
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, str(Path(__file__).resolve()), *sys.argv[1:]], env)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.malloc_hugepages and platform.system() == "Linux" and argv is None:
        reexec_with_hugepages()
    t_start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    cold_dir = None
    if args.cold_compile:  # inductor reads this lazily, so setting it after importing torch works
        cold_dir = tempfile.mkdtemp(prefix="bench_model_inductor_")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cold_dir
    args.steps = args.steps or (3 if args.quick else 10)
    args.warmup = args.warmup or (1 if args.quick else 2)
    available = bench_configs()
    names = [n.strip() for n in (args.configs or ("quick" if args.quick else "cpu-demo,d4-w384,runcpu-d6")).split(",")
             if n.strip()]
    unknown = [n for n in names if n not in available]
    if unknown:
        print(f"unknown config(s) {unknown}; choose among {', '.join(available)}", file=sys.stderr)
        return 2
    configs = [available[n] for n in names]
    if args.batch:
        configs = [BenchConfig(bc.name, bc.gpt, args.batch) for bc in configs]
    headline = "quick" if args.quick else HEADLINE
    demo = "quick" if args.quick else DEMO

    env = environment()
    peer_note = None
    if args.skip_peer:
        peer_note = "skipped"
    elif not peer_available():
        peer_note = NOT_INSTALLED
    log(f"{env['hardware']['cpu']}, {env['hardware']['threads']} threads, torch {torch.__version__}; "
        f"peer: {peer_note or env['software']['llms_from_scratch']}")

    peak = PeakTracker((1024,) if args.quick else PEAK_SIZES, 2 if args.quick else 4)
    peak.measure("start")
    modes = [False] if args.no_compile else [False, True]
    cells: list[dict] = []
    kinds = ["ours"] if peer_note else ["ours", "peer"]
    for bc in configs:
        for compiled in modes:
            cells += run_cells(kinds, bc, compiled, args.warmup, args.steps)
        peak.measure(f"after {bc.name}")

    P = peak.peak
    for cell in cells:
        if ok(cell):
            cell["mfu"] = cell["flops_per_s"] / P
    s = summary(cells, P, headline, demo)
    t = targets(s, args.quick)

    print(markdown(env, peak, cells, configs, peer_note, args))
    print(targets_text(s, t) if not args.quick else "\n(quick run: targets are not evaluated)\n")
    wall = time.perf_counter() - t_start
    print(f"wall time: {wall:.0f} s")
    result = {
        **s,
        "peak_flops": P,
        "peak_samples": peak.samples,
        "flops_per_token": (find(cells, headline, "ours", False) or {}).get("flops_per_token"),
        "peer_flops_per_token": (find(cells, headline, "peer", False) or {}).get("flops_per_token"),
        "headline_config": headline,
        "headline_batch": next((bc.batch for bc in configs if bc.name == headline), None),
        "demo_config": demo,
        "targets_met": t,
        "hardware": env["hardware"],
        "software": env["software"],
        "torch": torch.__version__,
        "dtype": "float32",
        "timing": f"best of {args.steps} steps after {args.warmup} warm-up",
        "steps": args.steps,
        "warmup": args.warmup,
        "quick": args.quick,
        "compile": not args.no_compile,
        "cold_compile": args.cold_compile,
        "peer": peer_note or "llms-from-scratch",
        "cells": cells,
        "wall_s": wall,
    }
    print(json.dumps(result))
    if cold_dir:
        shutil.rmtree(cold_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
