#!/usr/bin/env python3
"""Training dashboard: curves, a live view and a summary of Phase 2 runs, from their metrics.jsonl.

Usage (from the repository root):

    python tools/training_dashboard.py cpu_demo                   # a run name under <base>/runs: text summary
    python tools/training_dashboard.py runs/a runs/b --png cmp.png  # two runs overlaid in one PNG
    python tools/training_dashboard.py cpu_demo --png out.png --x tokens   # x axis: tokens (or time)
    python tools/training_dashboard.py cpu_demo --follow           # live terminal view while it trains
    python tools/training_dashboard.py path/to/metrics.jsonl --json  # numbers for scripts

It reads only what ``phases/phase2_training/train.py`` writes: ``<run>/metrics.jsonl`` (one
JSON record per line: step, eval, samples, checkpoint) and the ``meta.json`` of the newest
checkpoint, whose ``train_config`` gives the planned steps and the LR schedule. Before the
first checkpoint exists, the warmup and warmdown are recovered from the ``lrm`` values in
the log and the planned length is unknown; the output says which source it used. Lines it
cannot parse (a crash cut the last one) are skipped and counted. The PNG needs matplotlib
(``pip install 'mini-nanochat[tools]'``); the summary and ``--follow`` do not. Colour and
cursor movement only on a terminal (``--no-color``, ``NO_COLOR``). What it leaves out: a web
server, GPU memory (the log has none), smoothing sliders.
"""
from __future__ import annotations

import argparse
import bisect
import itertools
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

try:  # run as `python tools/training_dashboard.py`: the repo root is not on sys.path
    import phases.phase0_tokenizer.common  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from phases.common.console import UserError, paint, run_command, use_color
from phases.common.paths import base_dir

METRICS = "metrics.jsonl"
SPARKS = "▁▂▃▄▅▆▇█"


# -- reading a run -------------------------------------------------------------------------------------
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
        """The final checkpoint of a run that reached its planned steps (or its max_seconds) is logged."""
        if not self.train_config or not any(s == self.last_step for s, _ in self.checkpoints):
            return False
        budget = float(self.train_config.get("max_seconds", 0) or 0)
        return self.last_step >= self.planned or (budget > 0 and self.train_time >= budget)

    def schedule(self) -> dict:
        """Warmup [0, warmup_end] and warmdown [warmdown_start, end] in steps, and where they came from."""
        c = self.train_config
        if c:
            n, wd = int(c["num_iterations"]), round(float(c["warmdown_ratio"]) * int(c["num_iterations"]))
            # the log's step s is "after s updates"; its lrm is the one update s used: lr_multiplier(s - 1)
            return dict(warmup_end=int(c["warmup_steps"]), warmdown_start=n - wd + 1 if wd else None, end=n,
                        source=f"train_config in {self.meta_path}")
        flat = [r["step"] for r in self.steps if r.get("lrm", 0) >= 1 - 1e-9]
        warmup_end = flat[0] if flat else self.last_step
        down = flat and flat[-1] < self.last_step
        return dict(warmup_end=warmup_end, warmdown_start=flat[-1] if down else None, end=self.last_step,
                    source="the lrm values logged in metrics.jsonl (no checkpoint yet)")


def find_metrics(arg: str, wait: bool = False) -> Path:
    """A run directory, a metrics.jsonl, or a run name under <base>/runs -> the metrics file (``wait``:
    for ``--follow``, a run that has not written its file yet is not an error)."""
    p = Path(arg).expanduser()
    for candidate in (p, p / METRICS):
        if candidate.is_file():
            return candidate
    named = base_dir() / "runs" / arg / METRICS
    if not p.is_absolute() and named.is_file():
        return named
    if wait:
        return p if p.suffix == ".jsonl" else p / METRICS if p.is_dir() or "/" in arg else named
    if p.is_dir():
        raise UserError(f"{p} holds no {METRICS} (has the run started? the file appears when training begins)")
    runs = sorted(d.name for d in (base_dir() / "runs").glob("*") if (d / METRICS).is_file())
    hint = f"runs under {base_dir() / 'runs'}: {', '.join(runs)}" if runs else f"no runs under {base_dir() / 'runs'}"
    raise UserError(f"no run at {arg!r}: not a run directory, a {METRICS} or a run name ({hint})")


def latest_meta(run_dir: Path) -> tuple[dict | None, Path | None]:
    """meta.json of the newest checkpoint that has a readable one (checksums are not checked here)."""
    ckpts = [d for d in (run_dir / "checkpoints").glob("step_*") if d.name[5:].isdigit()]
    for d in sorted(ckpts, key=lambda d: int(d.name[5:]), reverse=True):
        try:
            return json.loads((d / "meta.json").read_text(encoding="utf-8")), d / "meta.json"
        except (OSError, ValueError):
            continue
    return None, None


def read_run(path: str | Path, name: str | None = None) -> Run:
    """Parse a run (its directory or its metrics.jsonl). Later records of a step replace earlier ones."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS
    try:
        raw = path.read_bytes()
        mtime = path.stat().st_mtime
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    run = Run(name or path.parent.name, path.parent, path, mtime=mtime)
    lines = raw.decode("utf-8", errors="replace").split("\n")
    steps, evals, ckpts = {}, {}, {}
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            kind, step = rec.get("event"), int(rec["step"])
        except (ValueError, KeyError, TypeError, AttributeError):
            if i == len(lines) - 1:            # no newline after it: a line still (or never) being written
                run.cut_last_line = True
            else:
                run.bad_lines += 1
            continue
        if kind == "step" and isinstance(rec.get("loss"), (int, float)):
            steps[step] = rec
        elif kind == "eval" and isinstance(rec.get("val_bpb"), (int, float)):
            evals[step] = float(rec["val_bpb"])
        elif kind == "checkpoint":
            ckpts[step] = str(rec.get("path", ""))
    run.steps = [steps[s] for s in sorted(steps)]
    run.evals = sorted(evals.items())
    run.checkpoints = sorted(ckpts.items())
    meta, run.meta_path = latest_meta(run.run_dir)
    run.train_config = (meta or {}).get("train_config")
    run.checkpoint_step = int(run.meta_path.parent.name[5:]) if run.meta_path else None
    return run


# -- numbers ---------------------------------------------------------------------------------------------
def _mean(values) -> float | None:
    values = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(values) / len(values) if values else None


def summarize(run: Run, last: int = 20) -> dict:
    tail = run.steps[-last:]
    mean_dt = _mean(r.get("dt") for r in tail)
    best = min(run.evals, key=lambda e: e[1]) if run.evals else None   # the first step reaching the minimum
    eta = None
    if run.planned is not None and mean_dt and not run.finished:
        remaining = max(0, run.planned - run.last_step)
        budget = float(run.train_config.get("max_seconds", 0) or 0)
        if budget > 0:
            remaining = min(remaining, max(0.0, budget - run.train_time) / mean_dt)
        eta = remaining * mean_dt
    notes = []
    if run.cut_last_line:
        notes.append("the last line is unfinished (a crash mid-write, or being written now); skipped")
    if run.bad_lines:
        notes.append(f"{run.bad_lines} unreadable line(s) skipped")
    if run.planned is None:
        notes.append("no checkpoint yet: the planned length is unknown until the first one is saved")
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


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    if seconds < 60:
        return f"{seconds:.1f}s"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _f(x, spec: str, none: str = "-") -> str:
    return none if x is None else format(x, spec)


def _rates(s: dict) -> str:
    mfu, dt = s["mean_mfu"], s["mean_dt"]
    return (f"{_f(s['mean_tok_per_s'], ',.0f')} tok/s, MFU {_f(mfu and 100 * mfu, '.2f')}%, "
            f"dt {_f(dt and 1000 * dt, '.0f')} ms (mean of the last {s['over_last_steps']} steps)")


def _val(s: dict, color: bool = False) -> str:
    if not s["evaluations"]:
        return "no evaluation yet"
    return (f"best {paint(format(s['best_val_bpb'], '.4f'), '1', color)} at step {s['best_val_step']}, "
            f"last {s['last_val_bpb']:.4f} at step {s['last_val_step']} ({s['evaluations']} evaluation"
            f"{'s' if s['evaluations'] > 1 else ''})")


def format_summary(s: dict, color: bool = False) -> str:
    sch, planned = s["schedule"], s["steps_planned"]
    state = "finished" if s["finished"] else f"{100 * s['steps_done'] / planned:.0f}%" if planned else "unfinished"
    down = f", warmdown from step {sch['warmdown_start']}" if sch["warmdown_start"] is not None else ", no warmdown yet"
    ckpt = f"step {s['latest_checkpoint_step']}: {s['latest_checkpoint']}" if s["latest_checkpoint"] else "none yet"
    lines = [paint(s["name"], "1", color) + f"  ({s['path']})",
             f"  steps          {s['steps_done']:,} / {_f(planned, ',', '?')} "
             f"({paint(state, '32', color and s['finished'])})",
             f"  smooth loss    {_f(s['last_smooth_loss'], '.4f')} at step {s['steps_done']}",
             f"  val bpb        {_val(s, color)}",
             f"  throughput     {_rates(s)}",
             f"  training time  {fmt_time(s['train_time_s'])} (optimizer steps only; evals and saves not counted)",
             f"  ETA            {'-' if s['finished'] else fmt_time(s['eta_s'])}"
             + (" (remaining steps x recent mean dt; evals not included)" if s["eta_s"] is not None else ""),
             f"  checkpoint     {ckpt}",
             f"  schedule       warmup to step {sch['warmup_end']}{down}; source: {sch['source']}"]
    return "\n".join(lines + [f"  note: {n}" for n in s["notes"]])


# -- the PNG ---------------------------------------------------------------------------------------------
def _x_of(run: Run, axis: str):
    """step -> x for the chosen axis (step, tokens, time), extrapolated linearly past the log."""
    key = {"tokens": "tokens", "time": "train_time"}.get(axis)
    if key is None:
        return lambda step: float(step)
    steps = [0] + [r["step"] for r in run.steps]
    vals = [0.0] + [float(r.get(key, 0.0)) for r in run.steps]

    def x(step: float) -> float:
        i = bisect.bisect_left(steps, step)
        if i == len(steps):                              # beyond the log: the recent slope
            j = max(0, len(steps) - 21)
            slope = (vals[-1] - vals[j]) / (steps[-1] - steps[j]) if steps[-1] > steps[j] else 0.0
            return vals[-1] + (step - steps[-1]) * slope
        if steps[i] == step or i == 0:
            return vals[i]
        return vals[i - 1] + (vals[i] - vals[i - 1]) * (step - steps[i - 1]) / (steps[i] - steps[i - 1])
    return x


def write_png(runs: list[Run], out: Path, axis: str = "step", last: int = 20) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError("the PNG needs matplotlib: pip install 'mini-nanochat[tools]'") from None
    fig, axes = plt.subplots(3, 2, figsize=(13, 11), dpi=100)
    (loss_ax, bpb_ax), (lr_ax, tps_ax), (mfu_ax, text_ax) = axes
    scale, unit = 1.0, "s"
    if axis == "time":
        top = max(r.train_time for r in runs)
        scale, unit = (3600.0, "h") if top > 3 * 3600 else (60.0, "min") if top > 300 else (1.0, "s")
    xlabel = {"step": "step", "tokens": "tokens trained", "time": f"training time ({unit})"}[axis]
    panels = [(loss_ax, "training loss", None), (lr_ax, "LR multiplier", "lrm"),
              (tps_ax, "tokens / s", "tok_per_s"), (mfu_ax, "MFU (% of peak)", "mfu")]
    texts, shaded, bests, tops, peaks = [], set(), [], [], []
    same = len({tuple(sorted((k, v) for k, v in r.schedule().items() if k != "source")) for r in runs}) == 1
    for i, run in enumerate(runs):
        color, xs = f"C{i % 10}", _x_of(run, axis)
        steps = [xs(r["step"]) / scale for r in run.steps]
        loss_ax.plot(steps, [r["loss"] for r in run.steps], color=color, alpha=0.25, lw=0.8)
        loss_ax.plot(steps, [r.get("smooth_loss", math.nan) for r in run.steps], color=color, lw=1.6,
                     label=f"{run.name} (smooth)")
        for ax, _, key in panels[1:]:
            ys = [(100.0 if key == "mfu" else 1.0) * r.get(key, math.nan) for r in run.steps]
            n = len(ys) // 200 if key != "lrm" else 0   # long noisy runs: faint raw + a moving average
            ax.plot(steps, ys, color=color, lw=1.2 if n < 2 else 0.6, alpha=1 if n < 2 else 0.25,
                    label=run.name if n < 2 else None)
            if n >= 2:
                cum = [0.0] + list(itertools.accumulate(ys))
                ax.plot(steps[n - 1:], [(cum[j + n] - cum[j]) / n for j in range(len(ys) - n + 1)], color=color,
                        lw=1.2, label=f"{run.name} (mean of {n} steps)")
        skip = len(run.steps) // 20                     # the first 5% of a run would squash the y axis
        tops.append(max((r.get("smooth_loss", 0.0) for r in run.steps[skip:]), default=0.0))
        peaks.append(max((r.get("smooth_loss", 0.0) for r in run.steps), default=0.0))
        if run.evals:
            ex = [xs(s) / scale for s, _ in run.evals]
            bpb_ax.plot(ex, [b for _, b in run.evals], "o-", color=color, ms=4, lw=1.2, label=run.name)
            s, b = min(run.evals, key=lambda e: e[1])
            bpb_ax.plot([xs(s) / scale], [b], "*", color=color, ms=14, mec="black", mew=0.6)
            bests.append((xs(s) / scale, b, f"best {b:.3f} @ {s}", color))
        sch = run.schedule()
        spans = [(0, sch["warmup_end"], "//", "warmup")]
        if sch["warmdown_start"] is not None:
            spans.append((sch["warmdown_start"], sch["end"], "\\\\", "warmdown"))
        for a, b, hatch, what in spans:
            span = (round(xs(a) / scale, 9), round(xs(b) / scale, 9))
            if (span, what) in shaded:                  # runs with the same schedule: shade it once, in grey
                continue
            shaded.add((span, what))
            shade = color if len(runs) > 1 and not same else "0.4"
            for ax in (loss_ax, bpb_ax, lr_ax, tps_ax, mfu_ax):
                ax.axvspan(*span, facecolor=shade, alpha=0.07, hatch=hatch, edgecolor=shade, lw=0,
                           label=(what if shade == "0.4" else f"{what} ({run.name})") if ax is lr_ax else None)
        s = summarize(run, last)
        texts.append(f"{run.name}: step {s['steps_done']:,}/{_f(s['steps_planned'], ',', '?')}"
                     f"{' (finished)' if s['finished'] else ''}, train time {fmt_time(s['train_time_s'])}\n"
                     f"  val bpb {_val(s)}\n  {_rates(s)}\n  warmup/warmdown shading from "
                     f"{'checkpoint meta.json' if run.train_config else 'logged lrm (no checkpoint)'}")
    lo, hi = bpb_ax.get_xlim()
    for x, y, label, color in bests:                     # labels point inwards, so none leaves the panel
        right = x > (lo + hi) / 2
        bpb_ax.annotate(label, (x, y), textcoords="offset points", xytext=(-8 if right else 8, 10),
                        ha="right" if right else "left", fontsize=8, color=color,
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
    if not any(r.evals for r in runs):
        bpb_ax.text(0.5, 0.5, "no evaluation yet", transform=bpb_ax.transAxes, ha="center", color="grey")
    for ax, title in [(loss_ax, "training loss (faint: raw, solid: debiased EMA)"),
                      (bpb_ax, "validation bits per byte (★ best)")] + [(a, t) for a, t, _ in panels[1:]]:
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.grid(alpha=0.3)
        if axis == "tokens":
            ax.xaxis.set_major_formatter(matplotlib.ticker.EngFormatter())
    low = loss_ax.get_ylim()[0]
    if max(peaks) - low > 2 * (max(tops) - low) > 0:    # the early loss would take over half the height
        loss_ax.set_ylim(low, max(tops) + 0.25 * (max(tops) - low))
        loss_ax.set_title(loss_ax.get_title() + "; y cut, the first steps are higher", fontsize=10)
    tps_ax.yaxis.set_major_formatter(matplotlib.ticker.EngFormatter())
    loss_ax.legend(fontsize=8)
    lr_ax.legend(fontsize=7, ncol=2)
    if len(runs) > 1:
        bpb_ax.legend(fontsize=8)
    text_ax.axis("off")
    text_ax.text(0, 1, "\n\n".join(texts[:5]), va="top", family="monospace", fontsize=8.5, transform=text_ax.transAxes)
    fig.suptitle("training dashboard: " + ", ".join(r.name for r in runs), fontsize=12)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


# -- the live view -------------------------------------------------------------------------------------
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
    state = (paint("finished", "1;32", color) if s["finished"] else f"ETA {fmt_time(s['eta_s'])}"
             if planned else "ETA unknown until the first checkpoint")
    return "\n".join([
        f"{paint(run.name, '1', color)}  step {s['steps_done']:,}/{_f(planned, ',', '?')}{pct}  {state}",
        f"  smooth loss {_f(s['last_smooth_loss'], '.4f')}  {paint(sparkline(losses), '36', color)}"
        f"  (last {len(losses)} steps)",
        f"  val bpb {_val(s, color)}",
        f"  {_rates(s)}, file updated {fmt_time(max(0.0, time.time() - run.mtime))} ago"])


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


# -- the command ------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="training_dashboard.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Curves, a live view and a summary of training runs, read from their metrics.jsonl.",
        epilog="examples (from the repository root):\n" + __doc__.split("\n\n")[2])
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="a run directory, its metrics.jsonl, or a run name under <base>/runs")
    p.add_argument("--png", metavar="FILE", nargs="?", const="",
                   help="write the charts to FILE (--png alone: <first run>/dashboard.png); needs matplotlib")
    p.add_argument("--x", choices=("step", "tokens", "time"), default="step",
                   help="x axis of the PNG: optimizer step (default), tokens trained or training time")
    p.add_argument("--follow", action="store_true", help="live terminal view, redrawn until the run finishes")
    p.add_argument("--interval", type=float, default=2.0, metavar="S", help="--follow: seconds between reads (2)")
    p.add_argument("--last", type=int, default=20, metavar="N",
                   help="average tok/s, MFU and step time over the last N steps (20)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON (a list, one object per run)")
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
    if args.follow:
        return follow(paths, names, args.interval, args.last, use_color(sys.stdout, force=args.color))
    runs = [read_run(p, n) for p, n in zip(paths, names)]
    wrote = None
    if args.png is not None:
        if not any(r.steps for r in runs):
            raise UserError("nothing to plot yet: no step has been logged")
        wrote = Path(args.png).expanduser() if args.png else runs[0].run_dir / "dashboard.png"
        if wrote.suffix.lower() != ".png":
            raise UserError(f"--png {args.png}: the file name must end in .png")
        write_png(runs, wrote, args.x, args.last)
    summaries = [summarize(r, args.last) for r in runs]
    if args.json:
        print(json.dumps(summaries, indent=2, default=str))
    else:
        color = use_color(sys.stdout, force=args.color)
        print("\n\n".join(format_summary(s, color) for s in summaries))
    if wrote and not args.json:
        print(f"\nwrote {wrote}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
