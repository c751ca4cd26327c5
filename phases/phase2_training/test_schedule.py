"""Phase 2 checkpoint, step 1: the learning-rate schedule (schedule.py: lr_multiplier, phase_of)."""
from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.phase2


def test_schedule_values(schedule):
    f = lambda s: schedule.lr_multiplier(s, 1000, warmup_steps=40, warmdown_ratio=0.65, final_lr_frac=0.05)  # noqa: E731
    assert f(0) == 1 / 40 and f(19) == 0.5 and f(39) == 1.0
    assert f(40) == 1.0 and f(350) == 1.0                   # constant until the warmdown starts
    assert math.isclose(f(675), 0.5 + 0.5 * 0.05)           # halfway down
    assert math.isclose(f(1000), 0.05)                      # ends at final_lr_frac
    assert all(f(s) >= f(s + 1) for s in range(40, 1000))   # never goes back up


def test_phase_of_matches_the_multiplier(schedule):
    cfg = {"num_iterations": 12, "warmup_steps": 2, "warmdown_ratio": 0.5, "final_lr_frac": 0.05, "matrix_lr": 0.1}
    phases = [schedule.phase_of(s, cfg)["phase"] for s in range(13)]
    assert phases == ["warmup"] * 2 + ["constant"] * 5 + ["warmdown"] * 5 + ["finished"]
    for step in range(12):
        point = schedule.phase_of(step, cfg, initial_lrs={"blocks": 0.02})
        assert point["multiplier"] == schedule.lr_multiplier(step, 12, 2, 0.5, 0.05)
        assert point["lrs"]["matrix"] == pytest.approx(0.1 * point["multiplier"])
        assert point["applied"]["blocks"] == pytest.approx(0.02 * point["multiplier"])
        assert (point["multiplier"] < 1) == (step >= point["warmdown_start"] or step < 1)
    assert schedule.is_last_step(12, 12) and schedule.is_last_step(3, 12, train_time=5.0, max_seconds=5.0)
    assert not schedule.is_last_step(3, 12, train_time=4.9, max_seconds=5.0)
