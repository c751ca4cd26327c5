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
