"""Pick the compute dtype of a CPU run by measuring it: ``dtype = "auto"`` in a training config.

Phase 1's policy (``compute_dtype``) runs bf16 only on CUDA GPUs of compute capability 8.0 or
later, because there it is always faster. On CPUs it depends on the chip: with bf16 matrix
units (Intel AMX) a bf16 matmul runs several times faster than fp32 and a whole training step
gains too; without them, bf16 can be *slower* (the conversions cost more than the matmuls
save). Guessing from the CPU's name or flags would be wrong somewhere, so this file times it:
a few forward+backward passes of the model being trained, in fp32 and in bf16 by turns, on a
small batch of the run's own shape, and keeps bf16 only when it is clearly faster (``MIN_GAIN``).

The weights stay fp32 either way (the optimizer updates fp32 master weights); only the
activations and matmuls of the forward and backward passes change dtype. The probe draws its
tokens from a private generator, so the run's random state is the same with or without it,
and it leaves no gradients behind. Golden tests keep fp32: only ``dtype = "auto"`` measures.

What it leaves out: float16 on CPU (no matrix units for it; it needs loss scaling) and GPUs
(Phase 1's policy already knows them).

Run: ``python -m phases.phase2_training.dtype_probe`` times the CPU demo's model here.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

MIN_GAIN = 1.15      # bf16 must be this much faster: smaller gains are within the noise of a loaded machine


@dataclass
class DtypeChoice:
    dtype: torch.dtype
    fp32_s: float            # one forward+backward pass of the probe batch, best of the repeats
    bf16_s: float | None     # None: bf16 did not run here

    def describe(self) -> str:
        name = str(self.dtype).removeprefix("torch.")
        if self.bf16_s is None:
            return f"compute dtype {name} (bf16 does not run on this CPU)"
        gain = self.fp32_s / self.bf16_s
        why = "faster" if self.dtype == torch.bfloat16 else f"not faster by {MIN_GAIN}x"
        return (f"compute dtype {name}: measured a forward+backward pass here in {self.fp32_s * 1e3:.0f} ms (fp32) "
                f"vs {self.bf16_s * 1e3:.0f} ms (bf16), bf16 {gain:.2f}x {why}")


def _time_pass(model, x: torch.Tensor, dtype: torch.dtype) -> float:
    model.compute_dtype = dtype
    t0 = time.perf_counter()
    model(x, targets=x).backward()
    return time.perf_counter() - t0


def _time_both(model, x: torch.Tensor, repeats: int) -> tuple[float, float | None]:
    """Best-of-``repeats`` seconds per pass in fp32 and bf16, the two alternating, so a load that
    comes or goes during the probe falls on both alike; the first pass of each warms up."""
    fp32, bf16 = [], []
    for i in range(repeats + 1):
        fp32.append(_time_pass(model, x, torch.float32))
        if bf16 is not None:
            try:
                bf16.append(_time_pass(model, x, torch.bfloat16))
            except RuntimeError:                           # an op without a bf16 CPU kernel
                bf16 = None
    return min(fp32[1:]), (min(bf16[1:]) if bf16 else None)


def choose_cpu_dtype(model, rows: int = 2, seq_len: int | None = None, repeats: int = 3) -> DtypeChoice:
    """Time ``model``'s forward+backward in fp32 and bf16 on ``rows`` x ``seq_len`` random tokens."""
    seq_len = seq_len or model.config.sequence_len
    gen = torch.Generator().manual_seed(0)                 # private: the run's RNG stream is untouched
    x = torch.randint(0, model.config.vocab_size, (rows, seq_len), generator=gen)   # (rows, T)
    was = model.compute_dtype
    try:
        fp32, bf16 = _time_both(model, x, repeats)
    finally:
        model.compute_dtype = was
        model.zero_grad(set_to_none=True)
    faster = bf16 is not None and fp32 / bf16 >= MIN_GAIN
    return DtypeChoice(torch.bfloat16 if faster else torch.float32, fp32, bf16)


if __name__ == "__main__":
    from phases.phase1_transformer.config import GPTConfig
    from phases.phase1_transformer.model import GPT

    torch.manual_seed(0)
    demo = GPT(GPTConfig.from_depth(4, aspect_ratio=64, head_dim=64, sequence_len=256, vocab_size=8192,
                                    window_pattern="L", value_embeds=False, resid_scalars=False))
    print(choose_cpu_dtype(demo, rows=8).describe())
