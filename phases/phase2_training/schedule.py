r"""The learning-rate schedule: linear warmup -> constant -> linear warmdown (nanochat's shape).

    lrm
    1.0 |     ______________________
        |    /                      \
        |   /                        \
  final |  /                          \___
        +--+----------------------+------+--> step
          warmup          (1 - warmdown_ratio) * N    N

Every param group's learning rate is its ``initial_lr`` times this multiplier, set before
each optimizer step. Warmup protects the first steps, when Adam's moment estimates are
still noise; the long linear warmdown to a small final fraction is where most of the loss
improvement of a short run is harvested.

What it leaves out: cosine schedules (nanochat uses linear), Muon's momentum and weight-decay
schedules (Phase 3).
"""
from __future__ import annotations


# --8<-- [start:lr_multiplier]
def lr_multiplier(step: int, num_iterations: int, warmup_steps: int = 40,
                  warmdown_ratio: float = 0.65, final_lr_frac: float = 0.05) -> float:
    """The factor applied to every group's initial LR at optimizer step ``step`` (0-based)."""
    warmdown_steps = round(warmdown_ratio * num_iterations)
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if step <= num_iterations - warmdown_steps:
        return 1.0
    progress = (num_iterations - step) / warmdown_steps   # 1 -> 0 over the warmdown
    return progress + (1 - progress) * final_lr_frac
# --8<-- [end:lr_multiplier]


if __name__ == "__main__":
    for s in (0, 19, 39, 40, 100, 349, 350, 500, 999, 1000):
        print(f"step {s:4d}: {lr_multiplier(s, 1000):.4f}")
