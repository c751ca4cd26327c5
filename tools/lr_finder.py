"""Learning-rate range test for MuonAdamW, one param-group kind at a time.

Leslie Smith's test (2015; fastai's ``lr_find``, torch-lr-finder): train for a few
hundred steps while the learning rate grows exponentially, watch the loss, and read a
good learning rate off the curve: where the loss falls fastest (*steepest*) and the
middle of the longest stretch where it keeps falling (*valley*). The loss is smoothed
(a debiased EMA) and the sweep stops once it diverges (smoothed loss > ``--diverge`` x its
best so far, or not finite). Afterwards the model, the optimizer and the data position
are restored exactly, so the function can run inside a training script.

What is new here: MuonAdamW has two kinds of groups with LRs a hundred times apart, so a
single sweep over "the" LR means little. This tool sweeps one kind (``muon``: the block
matrices; ``adamw``: embeddings, lm_head, scalars) while the other kind stays at its
configured LRs. It sweeps a *multiplier* of the configured values and prints the config
values it suggests, and what nanochat's scaling makes of them at this size: every LR x
sqrt(B / B_ref), the AdamW ones also x (d_model / 768)^-0.5 (wider models get smaller
embedding steps, as muP prescribes; Muon needs no width factor since its update has a
fixed spectral size).

Examples (from the repository root):
  python tools/lr_finder.py --config examples/cpu_demo.toml                 # both kinds, text
  python tools/lr_finder.py --config examples/cpu_demo.toml --group muon --png lr.png
  python tools/lr_finder.py --set depth=2 --set total_batch_size=2048 --steps 60 --json

The PNG needs matplotlib (``pip install 'mini-nanochat[tools]'``).
What it leaves out: several seeds, the LR schedule of the real run (the test is a
warmup of its own), distributed runs.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

import _view
from phases.common.console import UserError, progress, run_command
from phases.phase2_training.metrics import debias

KINDS = ("muon", "adamw")
CONFIG_KEYS = {"muon": ("matrix_lr",), "adamw": ("embedding_lr", "unembedding_lr", "scalar_lr")}


@dataclass
class Sweep:
    kind: str
    multipliers: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    smoothed: list = field(default_factory=list)
    stopped: str = "finished"
    steepest: float | None = None
    valley: float | None = None


def smooth(losses: list[float], beta: float) -> list[float]:
    """Debiased exponential moving average (the first values are not pulled toward 0), as the loop logs it."""
    out, avg = [], 0.0
    for i, x in enumerate(losses):
        avg = beta * avg + (1 - beta) * x
        out.append(debias(avg, i + 1, beta))
    return out


def steepest(mults: list[float], smoothed: list[float], skip: int = 3) -> float | None:
    """The multiplier where the smoothed loss falls fastest per unit of log(lr)."""
    if len(smoothed) < 2 * skip + 3:
        return None
    slopes = [(smoothed[i + 1] - smoothed[i - 1]) / math.log(mults[i + 1] / mults[i - 1])
              for i in range(skip, len(smoothed) - skip - 1)]
    return mults[skip + min(range(len(slopes)), key=slopes.__getitem__)]


def valley(mults: list[float], smoothed: list[float]) -> float | None:
    """Two thirds into the longest run of points whose loss keeps going down.

    A longest decreasing subsequence (O(n^2), n is a few hundred): its first and last
    points bound the valley; two thirds of the way in is low enough to be fast and far
    enough from the divergence edge to be safe.
    """
    n = len(smoothed)
    if n < 5:
        return None
    length, prev = [1] * n, [-1] * n
    for j in range(n):
        for i in range(j):
            if smoothed[i] > smoothed[j] and length[i] + 1 > length[j]:
                length[j], prev[j] = length[i] + 1, i
    end = max(range(n), key=length.__getitem__)
    start = end
    while prev[start] >= 0:
        start = prev[start]
    return mults[start + (2 * (end - start)) // 3]


# --8<-- [start:range_test]
def lr_range_test(model, optimizer, next_batch, kind: str, start: float = 0.01, end: float = 100.0,
                  steps: int = 100, beta: float = 0.9, diverge: float = 4.0, hparams=None,
                  show_progress: bool = False) -> Sweep:
    """Sweep the LRs of one kind of group x (start ... end), exponentially; restore everything after.

    ``next_batch()`` -> (x, y); ``hparams(optimizer, step)`` sets everything but the swept
    LRs before each step (momentum schedules...); the other kind keeps its ``initial_lr``.
    """
    if kind not in KINDS:
        raise UserError(f"--group must be one of {', '.join(KINDS)}, got {kind!r}")
    if not 0 < start < end or steps < 5 or not 0 <= beta < 1 or diverge <= 1:
        raise UserError("need 0 < start < end, steps >= 5, 0 <= smoothing < 1 and diverge > 1")
    swept = [g for g in optimizer.param_groups if g["kind"] == kind]
    if not swept:
        raise UserError(f"the optimizer has no {kind} groups (optimizer = 'adamw' puts no matrix on Muon)")
    saved_model = copy.deepcopy(model.state_dict())
    saved_opt = copy.deepcopy(optimizer.state_dict())
    saved_rng = torch.get_rng_state()
    result = Sweep(kind)
    best, avg = math.inf, 0.0
    bar = progress(total=steps, desc=f"{kind} sweep", unit="step", enabled=show_progress)
    try:
        for i in range(steps):
            m = start * (end / start) ** (i / (steps - 1))          # exponential: equal steps in log(lr)
            if hparams:
                hparams(optimizer, i)
            for g in optimizer.param_groups:
                g["lr"] = g["initial_lr"] * (m if g["kind"] == kind else 1.0)
            x, y = next_batch()
            loss = model(x, targets=y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            result.multipliers.append(m)
            result.losses.append(loss.item())
            avg = beta * avg + (1 - beta) * result.losses[-1]
            s = debias(avg, i + 1, beta)
            result.smoothed.append(s)
            best = min(best, s)
            bar.update(1)
            if not math.isfinite(s) or s > diverge * best:
                result.stopped = f"diverged at x{m:.3g} (smoothed loss {s:.3g} > {diverge:g} x best {best:.3g})"
                break
    finally:  # the model and optimizer leave exactly as they came, even after Ctrl-C
        bar.close()
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_opt)
        optimizer.zero_grad(set_to_none=True)
        torch.set_rng_state(saved_rng)
    keep = [i for i, s in enumerate(result.smoothed) if math.isfinite(s) and s <= diverge * best]
    mults, sm = [result.multipliers[i] for i in keep], [result.smoothed[i] for i in keep]
    result.steepest, result.valley = steepest(mults, sm), valley(mults, sm)
    return result
# --8<-- [end:range_test]


def explain(sweep: Sweep, cfg, plan) -> list[str]:
    s, lines = plan.scaling, []
    for name, m in (("steepest", sweep.steepest), ("valley", sweep.valley)):
        if m is None:
            lines.append(f"  {name:9s} not enough points (raise --steps or the range)")
            continue
        values = ", ".join(f"{k} = {getattr(cfg, k) * m:.4g}" for k in CONFIG_KEYS[sweep.kind])
        lines.append(f"  {name:9s} x{m:.3g} of the configured LRs -> {values}")
    if sweep.kind == "muon":
        lines.append(f"  effective Muon LR = matrix_lr x sqrt(B/B_ref) = matrix_lr x {s.lr_batch_scale:.4g}"
                     f" (x sqrt(rows/cols) for tall matrices); no width factor")
    else:
        lines.append(f"  effective AdamW LR = value x sqrt(B/B_ref) x (d_model/768)^-0.5 = value x "
                     f"{s.lr_batch_scale:.4g} x {s.dmodel_scale:.4g} (scalars: no width factor)")
    return lines


def write_png(sweeps: list[Sweep], path: Path) -> None:
    plt = _view.pyplot()
    fig, axes = plt.subplots(1, len(sweeps), figsize=(6 * len(sweeps), 4), squeeze=False)
    for ax, sw in zip(axes[0], sweeps):
        ax.plot(sw.multipliers, sw.losses, color="0.75", lw=1, label="loss")
        ax.plot(sw.multipliers, sw.smoothed, color="C0", lw=2, label="smoothed")
        for name, m, color in (("steepest", sw.steepest, "C1"), ("valley", sw.valley, "C2")):
            if m is not None:
                ax.axvline(m, color=color, ls="--", label=f"{name} x{m:.3g}")
        ax.set_xscale("log")
        ax.set_xlabel(f"multiplier of the configured {sw.kind} LRs")
        ax.set_ylabel("training loss")
        ax.set_title(f"{sw.kind} groups swept, the others fixed")
        finite = [v for v in sw.smoothed if math.isfinite(v)]
        if finite:
            ax.set_ylim(min(finite) - 0.1, max(finite[: max(1, len(finite) // 10)]) + 0.5)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lr_finder.py", formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="LR range test for MuonAdamW: one group kind at a time.",
                                epilog="examples (from the repository root):\n" + __doc__.split("\n\n")[3]
                                .split("\n", 1)[1])
    p.add_argument("--config", type=Path, help="a training TOML (Phase 3 keys); default: the built-in defaults")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--group", choices=(*KINDS, "both"), default="both", help="which kind to sweep (both)")
    p.add_argument("--start", type=float, default=0.01, help="first multiplier of the configured LRs (0.01)")
    p.add_argument("--end", type=float, default=100.0, help="last multiplier (100)")
    p.add_argument("--steps", type=int, default=100, help="steps per sweep (100)")
    p.add_argument("--smoothing", type=float, default=0.9, help="EMA beta of the loss (0.9)")
    p.add_argument("--diverge", type=float, default=4.0, help="stop when smoothed loss > this x best (4)")
    p.add_argument("--png", type=Path, metavar="FILE", help="plot the curves and suggestions (needs matplotlib)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return p


def run(args: argparse.Namespace, out=None) -> dict:
    out = out or sys.stdout
    from phases.phase1_transformer.model import GPT
    from phases.phase2_training.config import parse_overrides
    from phases.phase2_training.recipe import Runtime, make_data
    from phases.phase2_training.train import load_tokenizer
    from phases.phase3_optimizers.recipe import derive, load_config, make_optimizer, set_hparams

    if args.png is not None and args.png.suffix.lower() != ".png":
        raise UserError(f"--png {args.png}: the file name must end in .png")
    overrides = parse_overrides(args.set)
    cfg = load_config(args.config, {"num_iterations": str(args.steps), **overrides})
    tok, tok_file = load_tokenizer(cfg)
    plan = derive(cfg, tok.vocab_size)
    cfg = plan.config
    torch.manual_seed(cfg.seed)
    model = GPT.build(plan.model, seed=cfg.seed)
    optimizer = make_optimizer(model, cfg, plan)
    loader, _ = make_data(cfg, tok, tok_file, torch.device("cpu"), Runtime(), show_progress=False)

    def next_batch():  # one optimizer step's worth of rows (accumulation folded into one batch)
        xs, ys = zip(*(loader.next_batch() for _ in range(plan.grad_accum)))
        return torch.cat(xs), torch.cat(ys)

    kinds = KINDS if args.group == "both" else (args.group,)
    if cfg.optimizer == "adamw":
        kinds = tuple(k for k in kinds if k == "adamw") or kinds
    sweeps = []
    for kind in kinds:
        data_state = loader.state_dict()        # each sweep sees the same batches
        sweeps.append(lr_range_test(model, optimizer, next_batch, kind, args.start, args.end, args.steps,
                                    args.smoothing, args.diverge, lambda o, i: set_hparams(o, i, cfg, 1.0),
                                    show_progress=not args.no_progress))
        loader.load_state_dict(data_state)
    report = {"config": {k: getattr(cfg, k) for k in ("depth", "total_batch_size", "matrix_lr", "embedding_lr",
                                                      "unembedding_lr", "scalar_lr")},
              "lr_batch_scale": plan.scaling.lr_batch_scale, "dmodel_scale": plan.scaling.dmodel_scale,
              "sweeps": [asdict(s) for s in sweeps]}
    if args.png is not None:
        write_png(sweeps, args.png)
    if args.json:
        print(json.dumps(report), file=out)
        return report
    print(f"LR range test: depth {cfg.depth}, batch {plan.total_batch_size:,} tokens, {args.steps} steps per "
          f"sweep, multipliers {args.start:g} .. {args.end:g}", file=out)
    for sw in sweeps:
        print(f"\n{sw.kind} groups (the other kind held at its configured LRs): {len(sw.losses)} steps, {sw.stopped}",
              file=out)
        print(f"  loss {sw.losses[0]:.3f} at x{sw.multipliers[0]:.3g}, lowest smoothed "
              f"{min(sw.smoothed):.3f} at x{sw.multipliers[sw.smoothed.index(min(sw.smoothed))]:.3g}", file=out)
        print("\n".join(explain(sw, cfg, plan)), file=out)
    print("\nA range test runs at a constant LR per step: a full run with warmup and warmdown usually"
          " tolerates its peak near the valley suggestion; confirm with a short real run.", file=out)
    if args.png is not None:
        print(f"wrote {args.png}", file=out)
    return report


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
