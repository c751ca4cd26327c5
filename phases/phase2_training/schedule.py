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

``phase_of(step, cfg)`` says where a step sits: warmup, constant, warmdown or finished, the
multiplier, the boundaries, and the learning rates actually applied (each optimizer group's
``initial_lr``, which already holds Phase 3's batch and width scaling, times the multiplier).
The tools call it instead of redoing the arithmetic. ``schedule_notes`` says when a schedule
does not do what its numbers suggest (a warmup as long as the run never reaches the peak);
the loop prints them as warnings before training.

What it leaves out: cosine schedules (nanochat uses linear), Muon's momentum and weight-decay
schedules (Phase 3).

Run: ``python -m phases.phase2_training.schedule`` prints the multiplier at a few steps.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping


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


def is_last_step(step: int, num_iterations: int, train_time: float = 0.0, max_seconds: float = 0.0) -> bool:
    """The run's horizon: ``num_iterations`` steps, or its time budget (``max_seconds`` > 0), whichever first."""
    return step >= num_iterations or (max_seconds > 0 and train_time >= max_seconds)


def warmdown_start(num_iterations: int, warmdown_ratio: float) -> int:
    """The first step whose multiplier is below 1 (``num_iterations`` when there is no warmdown)."""
    return num_iterations - round(warmdown_ratio * num_iterations) + 1


def schedule_notes(num_iterations: int, warmup_steps: int, warmdown_ratio: float) -> list[str]:
    """What is surprising about a schedule, for the startup warnings (empty when nothing is)."""
    notes = []
    down = warmdown_start(num_iterations, warmdown_ratio)
    if warmup_steps >= num_iterations > 0:
        notes.append(f"warmup_steps {warmup_steps} >= num_iterations {num_iterations}: the learning rate never "
                     f"reaches its peak (it stops at {num_iterations / warmup_steps:.2f} x lr); "
                     f"lower warmup_steps, e.g. --set warmup_steps={max(1, num_iterations // 10)}")
    elif warmup_steps >= down:
        notes.append(f"the warmup ({warmup_steps} steps) runs into the warmdown (from step {down}): the learning "
                     f"rate drops from its peak to {lr_multiplier(warmup_steps, num_iterations, warmup_steps, warmdown_ratio):.2f}"
                     " x lr at once after the warmup; lower warmup_steps or warmdown_ratio")
    return notes


def phase_of(step: int, cfg, initial_lrs: Mapping[str, float] | None = None) -> dict:
    """Where optimizer step ``step`` (0-based) sits on the schedule of ``cfg`` (a config or its dict).

    Returns ``phase`` (warmup / constant / warmdown / finished), ``multiplier``, the
    boundaries, ``lrs`` (the config's base learning rates x the multiplier) and, given a
    run's ``initial_lrs`` (one per optimizer group, saved in every checkpoint), ``applied``:
    the learning rate each group really uses at that step.
    """
    c = cfg if isinstance(cfg, Mapping) else dataclasses.asdict(cfg)
    n, warmup = int(c["num_iterations"]), int(c["warmup_steps"])
    down = warmdown_start(n, float(c["warmdown_ratio"]))
    phase = ("finished" if step >= n else "warmup" if step < warmup else
             "constant" if step < down else "warmdown")
    lrm = lr_multiplier(min(step, n), n, warmup, c["warmdown_ratio"], c["final_lr_frac"])
    lrs = {k: c[f"{k}_lr"] * lrm for k in ("matrix", "embedding", "unembedding", "scalar") if f"{k}_lr" in c}
    point = {"step": step, "phase": phase, "multiplier": lrm, "warmup_steps": warmup,
             "warmdown_start": down, "num_iterations": n, "lrs": lrs}
    if initial_lrs:
        point["applied"] = {name: lr * lrm for name, lr in initial_lrs.items()}
    return point


if __name__ == "__main__":
    for s in (0, 19, 39, 40, 100, 349, 350, 500, 999, 1000):
        print(f"step {s:4d}: {lr_multiplier(s, 1000):.4f}")
