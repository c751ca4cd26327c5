"""Phase 7 checkpoint: tasks, slicing, mixtures with epochs and nanochat's seeded shuffle."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.phase7


# -- tasks and mixtures ------------------------------------------------------------------------

class Numbers:
    """A task whose example i is the conversation 'i'."""

    def __new__(cls, tasks, name, n, **slice_):
        class T(tasks.Task):
            def get_example(self, index):
                return {"messages": [{"role": "user", "content": f"{name}{index}"}], "id": (name, index)}
        t = T(list(range(n)), **slice_)
        t.name = name
        return t


def test_task_slicing(tasks):
    t = Numbers(tasks, "a", 10, start=2, stop=9, step=3)
    assert len(t) == 3 and [ex["id"][1] for ex in t] == [2, 5, 8]
    assert t.num_examples() == 10
    with pytest.raises(IndexError):
        t[3]


def test_mixture_epochs_and_seeded_shuffle(tasks):
    a, b = Numbers(tasks, "a", 3), Numbers(tasks, "b", 2)
    mix = tasks.TaskMixture([a, b], epochs=[2, 1], seed=5)
    ids = [ex["id"] for ex in mix]
    assert sorted(ids) == sorted([("a", i) for i in range(3)] * 2 + [("b", 0), ("b", 1)])
    assert ids == [ex["id"] for ex in tasks.TaskMixture([a, b], epochs=[2, 1], seed=5)]    # same seed, same order
    assert ids != [ex["id"] for ex in tasks.TaskMixture([a, b], epochs=[2, 1], seed=6)]
    assert mix.counts() == {"a": 6, "b": 2} and mix.source(0) == mix[0]["id"]
    with pytest.raises(Exception, match="epochs"):
        tasks.TaskMixture([a, b], epochs=[1])
    with pytest.raises(Exception, match="conversations .0 generated. needs about .*more than half"):  # issue 15: was
        tasks.TaskMixture([a], epochs=10 ** 12)                                    # minutes of listing, then a crash


def test_seeded_order_is_numpys_permutation(tasks):
    assert tasks.seeded_order(50, 42) == np.random.default_rng(42).permutation(50).tolist()
