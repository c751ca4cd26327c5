"""What a run reports: metrics.jsonl (plus optional TensorBoard / wandb), the console line, MFU.

- ``MetricsLog`` appends one JSON object per line to ``<run>/metrics.jsonl`` and flushes
  it, so a crash loses at most the line being written; on resume, ``truncate_after(step)``
  drops records of steps the crash lost, so the file always tells one consistent story.
  ``read_metrics`` is the one reader of that file (the tools and the resume use it).
  Records: ``step`` (loss, smooth_loss, lrm, dt, tok_per_s, mfu, train_time, tokens),
  ``eval`` (val_bpb and any extra evaluation), ``samples``, ``checkpoint`` (path).
  ``tensorboard=True`` / ``wandb=True`` also send the numbers there (each needs its package;
  asking for one that is not installed is a clear error, not a silent no-op).
- ``StepTimer`` prints the training line: step, debiased EMA loss, LR multiplier, step
  time, tokens/s, MFU, ETA — redrawn in place on a terminal, every ``log_every`` steps
  otherwise.
- ``peak_flops``: the denominator of MFU. On a known GPU (``GPUS``: peak and memory, which the
  model calculator reads too), its dense bf16 peak (nanochat's table); otherwise a matmul peak
  measured on the spot, so "MFU" on a CPU means "share of
  what this machine's matmul reaches", stated as such.

What it leaves out: a web dashboard (``tools/training_dashboard.py`` renders the file).

Run nothing here directly; it is imported.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Iterable

import torch

from phases.common.console import UserError, duration
from phases.common.files import atomic_write_text

METRICS_FILE = "metrics.jsonl"
GPUS = {  # device-name substring -> (dense bf16 FLOP/s: nanochat's table, memory in GiB); first match wins
    "H100 NVL": (835e12, 94), "H100 PCIe": (756e12, 80), "H100": (989e12, 80), "H200 NVL": (836e12, 141),
    "H200": (989e12, 141), "A100": (312e12, 80), "L40S": (362e12, 48), "L4": (121e12, 24), "GB200": (2.5e15, 186),
    "B200": (2.25e15, 180), "MI300X": (1.3074e15, 192), "RTX 4090": (165.2e12, 24), "RTX 5090": (209.5e12, 32),
}


def measure_matmul_peak(device: torch.device, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """Best FLOP/s of square matmuls on this device and dtype (the same run, same threads)."""
    n = 2048 if device.type == "cpu" else 8192
    gen = torch.Generator(device=device).manual_seed(0)   # its own generator: the run's RNG state is untouched
    a = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=gen)
    best, deadline = 0.0, time.perf_counter() + seconds
    while True:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        (a @ b).sum().item()
        dt = time.perf_counter() - t0
        best = max(best, 2 * n ** 3 / dt)
        if time.perf_counter() > deadline:
            return best


def gpu_spec(name: str) -> tuple[str, float, float] | None:
    """(table name, bf16 peak FLOP/s, GiB) of a GPU named like ``H100``, ``h100-pcie`` or a CUDA device name."""
    squash = lambda text: text.lower().replace("-", "").replace(" ", "").replace("_", "")  # noqa: E731
    for key, (peak, mem) in GPUS.items():
        if squash(key) == squash(name) or key in name:
            return key, peak, mem
    return None


def peak_flops(device: torch.device, dtype: torch.dtype) -> float:
    """The denominator of MFU: a known GPU's bf16 peak, else a matmul peak measured here."""
    spec = gpu_spec(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
    return spec[1] if spec else measure_matmul_peak(device, dtype)


def debias(ema: float, step: int, beta: float = 0.9) -> float:
    """An exponential moving average started at 0, corrected for that start (Adam's bias correction)."""
    return ema / (1 - beta ** step) if step > 0 else ema


def eta_seconds(step: int, num_iterations: int, dt: float, train_time: float = 0.0, max_seconds: float = 0.0) -> float:
    """Training time left: the steps to go (or the time budget left, if sooner) at ``dt`` seconds a step."""
    remaining = num_iterations - step
    if max_seconds > 0:
        remaining = min(remaining, (max_seconds - train_time) / max(dt, 1e-9))
    return max(0.0, remaining) * dt


def metrics_path(run: str | os.PathLike) -> Path:
    """``<run>/metrics.jsonl`` for a run folder; a path to the file itself is returned as is."""
    run = Path(run)
    return run if run.suffix == ".jsonl" else run / METRICS_FILE


def parse_records(lines: Iterable[str], report: dict | None = None) -> list[dict]:
    """The JSON object records among ``lines``, in order. A line that is not one is skipped;
    ``report`` (if given) counts them: ``bad_lines``, and ``cut_last_line`` when it is the
    last line (a crash mid-write, or a line still being written)."""
    lines = list(lines)
    records, bad, cut = [], 0, False
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            step = record.get("step", 0) if isinstance(record, dict) else None
            if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step < 2 ** 63:
                raise ValueError("not a record")      # a step is a whole number: 1.5, -3, true, "x" are not
        except (ValueError, RecursionError):          # RecursionError: JSON nested thousands deep
            if i == len(lines) - 1:
                cut = True
            else:
                bad += 1
            continue
        records.append(record)
    if report is not None:
        report.update(bad_lines=bad, cut_last_line=cut)
    return records


def read_metrics(run: str | os.PathLike, report: dict | None = None) -> list[dict]:
    """Every record of a run's ``metrics.jsonl`` (the run folder or the file), in file order."""
    path = metrics_path(run)
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    return parse_records(text.split("\n"), report)


class MetricsLog:
    def __init__(self, run_dir: Path, tensorboard: bool = False, wandb: bool = False, config: dict | None = None):
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / METRICS_FILE
        self.tb = self.wb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.tb = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:
                raise UserError("tensorboard=true needs the tensorboard package: pip install tensorboard") from None
        if wandb:
            try:
                import wandb as wb
            except ImportError:
                raise UserError("wandb=true needs the wandb package: pip install wandb") from None
            self.wb = wb.init(project="mini-nanochat", name=run_dir.name, config=config, dir=str(run_dir))
        self.file = open(self.path, "a", encoding="utf-8")

    def truncate_after(self, step: int) -> None:
        """Drop records with a step beyond ``step`` (they belong to work a crash lost)."""
        self.file.close()
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]   # a line cut by a crash goes too
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self.file = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        step = record.get("step", 0)
        scalars = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != "step"}
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(f"{record.get('event', 'step')}/{k}", v, step)
        if self.wb is not None:
            self.wb.log({f"{record.get('event', 'step')}/{k}": v for k, v in scalars.items()}, step=step)

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()
        if self.wb is not None:
            self.wb.finish()


class StepTimer:
    """The console: one live line on a terminal, a line every ``log_every`` steps otherwise."""

    def __init__(self, enabled: bool, log_every: int, out):
        self.enabled, self.log_every, self.out = enabled, max(1, log_every), out
        self.tty = enabled and hasattr(out, "isatty") and out.isatty() and not os.environ.get("CI")
        self.live = False

    def step(self, step, total, loss, lrm, dt, tok_per_s, mfu, eta_s) -> None:
        if not self.enabled:
            return
        line = (f"step {step:5d}/{total} ({100 * step / total:5.1f}%) | loss {loss:.4f} | lrm {lrm:.3f} | "
                f"dt {dt * 1000:6.0f}ms | tok/s {tok_per_s:8,.0f} | mfu {100 * mfu:5.1f}% | eta {duration(eta_s)}")
        if self.tty:
            self.out.write("\r\x1b[2K" + line)
            self.out.flush()
            self.live = True
        elif step % self.log_every == 0 or step == total:
            print(line, file=self.out, flush=True)

    def message(self, text: str) -> None:
        if self.live:
            self.out.write("\r\x1b[2K")
            self.live = False
        print(text, file=self.out, flush=True)

    def close(self) -> None:
        if self.live:
            self.out.write("\n")
            self.live = False
