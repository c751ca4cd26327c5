"""What a run reports: metrics.jsonl (plus optional TensorBoard / wandb), the console line, MFU.

- ``MetricsLog`` appends one JSON object per line to ``<run>/metrics.jsonl`` and flushes
  it, so a crash loses at most the line being written; on resume, ``truncate_after(step)``
  drops records of steps the crash lost, so the file always tells one consistent story.
  ``tensorboard=True`` / ``wandb=True`` also send the numbers there (each needs its package;
  asking for one that is not installed is a clear error, not a silent no-op).
- ``StepTimer`` prints the training line: step, debiased EMA loss, LR multiplier, step
  time, tokens/s, MFU, ETA — redrawn in place on a terminal, every ``log_every`` steps
  otherwise.
- ``peak_flops``: the denominator of MFU. On a known GPU, its dense bf16 peak (nanochat's
  table); otherwise a matmul peak measured on the spot, so "MFU" on a CPU means "share of
  what this machine's matmul reaches", stated as such.

What it leaves out: a web dashboard (``tools/training_dashboard.py`` renders the file).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from phases.common.console import UserError
from phases.common.files import atomic_write_text

GPU_PEAK_BF16 = {  # dense bf16 FLOP/s by device-name substring (first match wins)
    "H100 NVL": 835e12, "H100 PCIe": 756e12, "H100": 989e12, "H200 NVL": 836e12, "H200": 989e12,
    "A100": 312e12, "L40S": 362e12, "L4": 121e12, "GB200": 2.5e15, "B200": 2.25e15,
    "MI300X": 1.3074e15, "RTX 4090": 165.2e12, "RTX 5090": 209.5e12,
}


def measure_matmul_peak(device: torch.device, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """Best FLOP/s of square matmuls on this device and dtype (the same run, same threads)."""
    n = 2048 if device.type == "cpu" else 8192
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
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


def peak_flops(device: torch.device, dtype: torch.dtype) -> float:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, value in GPU_PEAK_BF16.items():
            if key in name:
                return value
    return measure_matmul_peak(device, dtype)


class MetricsLog:
    def __init__(self, run_dir: Path, tensorboard: bool = False, wandb: bool = False, config: dict | None = None):
        run_dir.mkdir(parents=True, exist_ok=True)
        self.path = run_dir / "metrics.jsonl"
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
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except ValueError:
                continue  # a line cut by a crash
        atomic_write_text(self.path, "".join(k + "\n" for k in kept))
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
                f"dt {dt * 1000:6.0f}ms | tok/s {tok_per_s:8,.0f} | mfu {100 * mfu:5.1f}% | eta {_hms(eta_s)}")
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


def _hms(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
