#!/usr/bin/env python3
"""Training dashboard: curves, a live view and a summary of Phase 2 runs, from their metrics.jsonl.

Usage (from the repository root):

    python tools/training_dashboard.py cpu_demo                   # a run name under <base>/runs: text summary
    python tools/training_dashboard.py runs/a runs/b --png cmp.png  # two runs overlaid in one PNG
    python tools/training_dashboard.py cpu_demo --png out.png --x tokens   # x axis: tokens (or time)
    python tools/training_dashboard.py cpu_demo --follow           # live terminal view while it trains
    python tools/training_dashboard.py path/to/metrics.jsonl --json  # numbers for scripts

It reads what the loop writes through Phase 2's readers: ``metrics.read_metrics`` (a line a
crash cut is skipped and counted) and the newest checkpoint's ``meta.json``, whose
``train_config`` gives the planned steps and, through ``schedule.phase_of``, the warmup and
warmdown (without a checkpoint yet: recovered from the logged ``lrm``, as the output says).
The PNG needs matplotlib (``pip install 'mini-nanochat[tools]'``). Colour only on a terminal
(``--no-color``, ``NO_COLOR``). What it leaves out: a web server, GPU memory, smoothing sliders.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import _view
from phases.common.console import UserError, duration, paint, run_command, use_color
from phases.common.files import output_file
from phases.common.paths import runs_dir
from phases.phase2_training.checkpoint import META_FILE, scan_checkpoints
from phases.phase2_training.metrics import METRICS_FILE, eta_seconds, metrics_path, read_metrics
from phases.phase2_training.schedule import is_last_step, phase_of

SPARKS = "▁▂▃▄▅▆▇█"  # the live view's loss curve, one character per bucket of steps


@dataclass
class Run:
    name: str
    run_dir: Path
    path: Path                                           # the metrics.jsonl
    steps: list[dict] = field(default_factory=list)      # step records, one per step, in step order
    evals: list[tuple[int, float]] = field(default_factory=list)   # (step, val_bpb), in step order
    checkpoints: list[tuple[int, str]] = field(default_factory=list)  # checkpoint events of the log
    bad_lines: int = 0                                   # lines that are not JSON records (not the last)
    cut_last_line: bool = False                          # the last line is unfinished (crash or mid-write)
    train_config: dict | None = None                     # from the newest checkpoint's meta.json
    meta_path: Path | None = None
    checkpoint_step: int | None = None                   # the newest checkpoint on disk
    mtime: float = 0.0

    @property
    def last_step(self) -> int:
        return self.steps[-1]["step"] if self.steps else 0

    @property
    def planned(self) -> int | None:
        return int(self.train_config["num_iterations"]) if self.train_config else None

    @property
    def train_time(self) -> float:
        return float(self.steps[-1].get("train_time", 0.0)) if self.steps else 0.0

    @property
    def finished(self) -> bool:
        """The final checkpoint of a run that reached its horizon (steps or max_seconds) is logged."""
        return bool(self.train_config) and any(s == self.last_step for s, _ in self.checkpoints) and is_last_step(
            self.last_step, self.planned, self.train_time, float(self.train_config.get("max_seconds", 0)))

    def schedule(self) -> dict:
        """Warmup [0, warmup_end] and warmdown [warmdown_start, end] in logged steps, and where they came from."""
        if self.train_config:   # the log's step s is "after s updates": its lrm is that of update s - 1
            p = phase_of(0, self.train_config)
            down = p["warmdown_start"] if p["warmdown_start"] <= p["num_iterations"] else None
            return dict(warmup_end=p["warmup_steps"], warmdown_start=down, end=p["num_iterations"],
                        source=f"train_config in {self.meta_path}")
        flat = [r["step"] for r in self.steps if r.get("lrm", 0) >= 1 - 1e-9]
        warmup_end = flat[0] if flat else self.last_step
        down = flat and flat[-1] < self.last_step
        return dict(warmup_end=warmup_end, warmdown_start=flat[-1] if down else None, end=self.last_step,
                    source="the lrm values logged in metrics.jsonl (no checkpoint yet)")


def find_metrics(arg: str, wait: bool = False) -> Path:
    """A run directory, a metrics.jsonl, or a run name under <base>/runs -> the metrics file (``wait``:
    for ``--follow``, a run that has not written its file yet is not an error)."""
    p, named = Path(arg).expanduser(), metrics_path(runs_dir() / arg)
    for candidate in (p, metrics_path(p)) + (() if p.is_absolute() else (named,)):
        if candidate.is_file():
            return candidate
    if wait:
        return metrics_path(p) if p.is_dir() or "/" in arg or p.suffix == ".jsonl" else named
    if p.is_dir():
        raise UserError(f"{p} holds no {METRICS_FILE} (has the run started? the file appears when training begins)")
    runs = sorted(d.name for d in runs_dir().glob("*") if metrics_path(d).is_file())
    hint = f"runs under {runs_dir()}: {', '.join(runs)}" if runs else f"no runs under {runs_dir()}"
    raise UserError(f"no run at {arg!r}: not a run directory, a {METRICS_FILE} or a run name ({hint})")


def read_run(path: str | Path, name: str | None = None) -> Run:
    """Parse a run (its directory or its metrics.jsonl). Later records of a step replace earlier ones."""
    path = metrics_path(path)
    report: dict = {}
    records = read_metrics(path, report)
    run = Run(name or path.parent.name, path.parent, path, mtime=path.stat().st_mtime, **report)
    steps, evals, ckpts = {}, {}, {}
    for rec in records:
        kind, step = rec.get("event"), int(rec.get("step", 0))
        if kind == "step" and isinstance(rec.get("loss"), (int, float)):
            steps[step] = rec
        elif kind == "eval" and isinstance(rec.get("val_bpb"), (int, float)):
            evals[step] = float(rec["val_bpb"])
        elif kind == "checkpoint":
            ckpts[step] = str(rec.get("path", ""))
    run.steps, run.evals, run.checkpoints = [steps[s] for s in sorted(steps)], sorted(evals.items()), sorted(ckpts.items())
    for c in reversed(scan_checkpoints(run.run_dir, hash=False)):   # headers only: --follow rereads it often
        if c.meta:
            run.train_config, run.meta_path, run.checkpoint_step = c.meta.get("train_config"), c.path / META_FILE, c.step
            break
    return run


def _mean(values) -> float | None:
    return sum(values) / len(values) if (values := [v for v in values if _view.num(v) != "-"]) else None


def summarize(run: Run, last: int = 20) -> dict:
    tail = run.steps[-last:]
    mean_dt = _mean(r.get("dt") for r in tail)
    best = min(run.evals, key=lambda e: e[1]) if run.evals else None   # the first step reaching the minimum
    eta = (eta_seconds(run.last_step, run.planned, mean_dt, run.train_time, float(run.train_config.get("max_seconds", 0)))
           if run.planned is not None and mean_dt and not run.finished else None)
    notes = [note for wanted, note in (
        (run.cut_last_line, "the last line is unfinished (a crash mid-write, or being written now); skipped"),
        (run.bad_lines, f"{run.bad_lines} unreadable line(s) skipped"),
        (run.planned is None, "no checkpoint yet: the planned length is unknown until the first one is saved"))
        if wanted]
    return {"name": run.name, "path": str(run.path), "steps_done": run.last_step, "steps_planned": run.planned,
            "finished": run.finished, "last_smooth_loss": run.steps[-1].get("smooth_loss") if run.steps else None,
            "best_val_bpb": best[1] if best else None, "best_val_step": best[0] if best else None,
            "last_val_bpb": run.evals[-1][1] if run.evals else None,
            "last_val_step": run.evals[-1][0] if run.evals else None, "evaluations": len(run.evals),
            "over_last_steps": len(tail), "mean_tok_per_s": _mean(r.get("tok_per_s") for r in tail),
            "mean_mfu": _mean(r.get("mfu") for r in tail), "mean_dt": mean_dt, "train_time_s": run.train_time,
            "eta_s": eta, "latest_checkpoint_step": run.checkpoint_step,
            "latest_checkpoint": str(run.meta_path.parent) if run.meta_path else None,
            "schedule": run.schedule(), "notes": notes}


def _rates(s: dict) -> str:
    mfu, dt = s["mean_mfu"], s["mean_dt"]
    return (f"{_view.num(s['mean_tok_per_s'], ',.0f')} tok/s, MFU {_view.num(mfu and 100 * mfu, '.2f')}%, "
            f"dt {_view.num(dt and 1000 * dt, '.0f')} ms (mean of the last {s['over_last_steps']} steps)")


def _val(s: dict, color: bool = False) -> str:
    return "no evaluation yet" if not s["evaluations"] else (f"best {paint(format(s['best_val_bpb'], '.4f'), '1', color)} at step {s['best_val_step']}, "
            f"last {s['last_val_bpb']:.4f} at step {s['last_val_step']} ({s['evaluations']} evaluation"
            f"{'s' if s['evaluations'] > 1 else ''})")


def format_summary(s: dict, color: bool = False) -> str:
    sch, planned = s["schedule"], s["steps_planned"]
    state = "finished" if s["finished"] else f"{100 * s['steps_done'] / planned:.0f}%" if planned else "unfinished"
    down = f", warmdown from step {sch['warmdown_start']}" if sch["warmdown_start"] is not None else ", no warmdown yet"
    ckpt = f"step {s['latest_checkpoint_step']}: {s['latest_checkpoint']}" if s["latest_checkpoint"] else "none yet"
    lines = [paint(s["name"], "1", color) + f"  ({s['path']})",
             f"  steps          {s['steps_done']:,} / {_view.num(planned, ',', '?')} "
             f"({paint(state, '32', color and s['finished'])})",
             f"  smooth loss    {_view.num(s['last_smooth_loss'], '.4f')} at step {s['steps_done']}",
             f"  val bpb        {_val(s, color)}",
             f"  throughput     {_rates(s)}",
             f"  training time  {duration(s['train_time_s'])} (optimizer steps only; evals and saves not counted)",
             f"  ETA            {'-' if s['finished'] else duration(s['eta_s'])}"
             + (" (remaining steps x recent mean dt; evals not included)" if s["eta_s"] is not None else ""),
             f"  checkpoint     {ckpt}",
             f"  schedule       warmup to step {sch['warmup_end']}{down}; source: {sch['source']}"]
    return "\n".join(lines + [f"  note: {n}" for n in s["notes"]])


def _x_of(run: Run, axis: str):
    """step -> x for the chosen axis (step, tokens, time): interpolated, extrapolated past the log."""
    key = {"tokens": "tokens", "time": "train_time"}.get(axis)
    if key is None:
        return float
    steps, vals = [0] + [r["step"] for r in run.steps], [0.0] + [float(r.get(key, 0.0)) for r in run.steps]
    j = max(0, len(steps) - 21)                          # beyond the log: the recent slope
    slope = (vals[-1] - vals[j]) / (steps[-1] - steps[j]) if steps[-1] > steps[j] else 0.0
    return lambda s: float(np.interp(s, steps, vals)) if s <= steps[-1] else vals[-1] + (s - steps[-1]) * slope


def write_png(runs: list[Run], out: Path, axis: str = "step", last: int = 20) -> None:
    plt = _view.pyplot()
    from matplotlib.ticker import EngFormatter
    fig, axes = plt.subplots(3, 2, figsize=(13, 11), dpi=100)
    (loss_ax, bpb_ax), (lr_ax, tps_ax), (mfu_ax, text_ax) = axes
    top = max(r.train_time for r in runs) if axis == "time" else 0
    scale, unit = (3600.0, "h") if top > 3 * 3600 else (60.0, "min") if top > 300 else (1.0, "s")
    xlabel = {"step": "step", "tokens": "tokens trained", "time": f"training time ({unit})"}[axis]
    panels = [(loss_ax, "training loss (faint: raw, solid: debiased EMA)", "smooth_loss", 1.0),
              (lr_ax, "LR multiplier", "lrm", 1.0), (tps_ax, "tokens / s", "tok_per_s", 1.0),
              (mfu_ax, "MFU (% of peak)", "mfu", 100.0)]
    texts, shaded = [], set()
    for i, run in enumerate(runs):
        color, xs = f"C{i % 10}", _x_of(run, axis)
        steps = [xs(r["step"]) / scale for r in run.steps]
        loss_ax.plot(steps, [r["loss"] for r in run.steps], color=color, alpha=0.25, lw=0.8)
        for ax, _, key, factor in panels:
            ax.plot(steps, [factor * r.get(key, math.nan) for r in run.steps], color=color, lw=1.2, label=run.name)
        if run.evals:
            s, b = min(run.evals, key=lambda e: e[1])
            bpb_ax.plot([xs(e) / scale for e, _ in run.evals], [v for _, v in run.evals], "o-", color=color, ms=4,
                        lw=1.2, label=f"{run.name}: best {b:.3f} @ {s}")
            bpb_ax.plot([xs(s) / scale], [b], "*", color=color, ms=14, mec="black", mew=0.6)
        sch = run.schedule()
        down = [(sch["warmdown_start"], sch["end"], "\\\\", "warmdown")] if sch["warmdown_start"] is not None else []
        for a, b, hatch, what in [(0, sch["warmup_end"], "//", "warmup")] + down:
            span = (round(xs(a) / scale, 9), round(xs(b) / scale, 9))
            if (span, what) not in shaded:                 # runs with the same schedule: shaded once
                shaded.add((span, what))
                for ax in (loss_ax, bpb_ax, lr_ax, tps_ax, mfu_ax):
                    ax.axvspan(*span, facecolor="0.4", alpha=0.07, hatch=hatch, edgecolor="0.4", lw=0,
                               label=f"{what} ({run.name})" if ax is lr_ax else None)
        texts.append(format_summary(summarize(run, last)))
    if not any(r.evals for r in runs):
        bpb_ax.text(0.5, 0.5, "no evaluation yet", transform=bpb_ax.transAxes, ha="center", color="grey")
    for ax, title in [(bpb_ax, "validation bits per byte (★ best)")] + [(a, t) for a, t, _, _ in panels]:
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        if axis == "tokens":
            ax.xaxis.set_major_formatter(EngFormatter())
    tps_ax.yaxis.set_major_formatter(EngFormatter())
    text_ax.axis("off")
    text_ax.text(0, 1, "\n\n".join(texts[:3]), va="top", family="monospace", fontsize=7, transform=text_ax.transAxes,
                 wrap=True)
    fig.suptitle("training dashboard: " + ", ".join(r.name for r in runs), fontsize=12)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def sparkline(values: list[float], width: int = 40) -> str:
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return ""
    k = min(width, len(values))                                        # k buckets, each averaged
    cuts = [round(i * len(values) / k) for i in range(k + 1)]
    pts = [sum(values[a:b]) / (b - a) for a, b in zip(cuts, cuts[1:])]
    lo, hi = min(pts), max(pts)
    chars = SPARKS if (sys.stdout.encoding or "").lower().startswith("utf") else " .:-=+*#"
    return "".join(chars[int((p - lo) / (hi - lo) * (len(chars) - 1)) if hi > lo else 0] for p in pts)


def live_view(run: Run, last: int = 20, color: bool = False) -> str:
    s = summarize(run, last)
    planned = s["steps_planned"]
    pct = f" ({100 * s['steps_done'] / planned:.0f}%)" if planned else ""
    losses = [r.get("smooth_loss", math.nan) for r in run.steps[-400:]]
    state = (paint("finished", "1;32", color) if s["finished"] else f"ETA {duration(s['eta_s'])}"
             if planned else "ETA unknown until the first checkpoint")
    return "\n".join([
        f"{paint(run.name, '1', color)}  step {s['steps_done']:,}/{_view.num(planned, ',', '?')}{pct}  {state}",
        f"  smooth loss {_view.num(s['last_smooth_loss'], '.4f')}  {paint(sparkline(losses), '36', color)}"
        f"  (last {len(losses)} steps)",
        f"  val bpb {_val(s, color)}",
        f"  {_rates(s)}, file updated {duration(max(0.0, time.time() - run.mtime))} ago"])


def follow(paths: list[Path], names: list[str], interval: float, last: int, color: bool, out=None) -> None:
    """Redraw the live view every ``interval`` s until every run is finished; Ctrl-C leaves quietly."""
    out = out or sys.stdout
    drawn, seen = 0, None
    try:
        while True:
            runs = [read_run(p, n) if p.exists() else None for p, n in zip(paths, names)]
            text = "\n".join(live_view(r, last, color) if r else f"{n}: waiting for {p} to appear (Ctrl-C to stop)"
                             for r, p, n in zip(runs, paths, names))
            state = [(r.last_step, len(r.evals), r.finished) if r else None for r in runs]
            if color:                                   # terminal: move up over the last drawing, clear, redraw
                out.write((f"\x1b[{drawn}F\x1b[J" if drawn else "") + text + "\n")
                drawn = text.count("\n") + 1
            elif state != seen:                         # piped: a new block only when something changed
                out.write(text + "\n\n")
            out.flush()
            seen = state
            if all(r and r.finished for r in runs):
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        out.write("\nstopped following (the training run itself is not affected)\n")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="training_dashboard.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Curves, a live view and a summary of training runs, read from their metrics.jsonl.",
        epilog="examples (from the repository root):\n" + __doc__.split("\n\n")[2])
    add = p.add_argument
    add("runs", nargs="+", metavar="RUN", help="a run directory, its metrics.jsonl, or a run name under <base>/runs")
    add("--png", metavar="FILE", nargs="?", const="",
        help="write the charts to FILE (--png alone: <first run>/dashboard.png); needs matplotlib")
    add("--x", choices=("step", "tokens", "time"), default="step", help="x axis of the PNG (default: step)")
    add("--follow", action="store_true", help="live terminal view, redrawn until the run finishes")
    add("--interval", type=float, default=2.0, metavar="S", help="--follow: seconds between reads (2)")
    add("--last", type=int, default=20, metavar="N", help="average tok/s, MFU and step time over the last N steps")
    add("--json", action="store_true", help="print the summary as JSON (a list, one object per run)")
    c = p.add_mutually_exclusive_group()
    c.add_argument("--color", dest="color", action="store_const", const=True, help="force colour")
    c.add_argument("--no-color", dest="color", action="store_const", const=False, help="no colour (also NO_COLOR)")
    return p


def run(args: argparse.Namespace) -> None:
    if args.last < 1 or args.interval <= 0:
        raise UserError("--last must be >= 1 and --interval > 0")
    if args.follow and (args.json or args.png is not None):
        raise UserError("--follow draws in the terminal; run --png or --json separately")
    paths = [find_metrics(a, wait=args.follow) for a in args.runs]
    names = [p.parent.name for p in paths]
    names = [f"{p.parent.parent.name}/{n}" if names.count(n) > 1 else n for p, n in zip(paths, names)]
    color = use_color(sys.stdout, force=args.color)
    if args.follow:
        return follow(paths, names, args.interval, args.last, color)
    runs = [read_run(p, n) for p, n in zip(paths, names)]
    wrote = None if args.png is None else Path(args.png).expanduser() if args.png else runs[0].run_dir / "dashboard.png"
    if wrote is not None:
        output_file(wrote, "--png", ".png")           # a folder, another suffix: one error, before drawing
        if not any(r.steps for r in runs):
            raise UserError("nothing to plot yet: no step has been logged")
        write_png(runs, wrote, args.x, args.last)
    summaries = [summarize(r, args.last) for r in runs]
    print(json.dumps(summaries, indent=2, default=str) if args.json
          else "\n\n".join(format_summary(s, color) for s in summaries) + (f"\n\nwrote {wrote}" if wrote else ""))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
