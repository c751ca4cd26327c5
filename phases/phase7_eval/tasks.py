"""Tasks and task mixtures: one shape for every evaluation set (and every fine-tuning set).

A **task** is a list of examples plus three facts about it:

- ``kind``: how it is scored. ``categorical`` (pick one of a few answer letters: ARC, MMLU),
  ``generative`` (write an answer that is checked: GSM8K, HumanEval) or ``in-context``
  (a base model's few-shot item scored by its losses: the CORE tasks, ``core.py``);
- ``random_baseline``: the accuracy of guessing (0.25 for four letters, 0 for free text),
  printed beside every score so a number can be read at all;
- how an example becomes a **conversation** (``task[i]``), the chat format of Phase 0, and
  how an answer to it is judged (``task.evaluate(conversation, completion)``).

Examples are addressed by position; ``start / stop / step`` take a slice without copying
(``GSM8K(rows, stop=100)``). ``seeded_order(n, seed)`` is nanochat's shuffle
(``np.random.default_rng(seed).permutation``, the row order of ``datasets.shuffle``), so
"the first 100 of ARC-Easy" means the same 100 questions here and there.

A **TaskMixture** interleaves several tasks into one sequence of conversations: each task
repeated ``epochs`` times (per task), the whole list shuffled once with a seeded
``random.Random``. Phase 8 fine-tunes on mixtures; the evaluations here run tasks alone.

What it leaves out: streaming datasets too large for memory, weighted sampling without
replacement across epochs (nanochat repeats a task in the list to oversample it; so can you).
"""
from __future__ import annotations

import random
from typing import Any, Sequence

import numpy as np

from phases.common.console import UserError

KINDS = ("categorical", "generative", "in-context")


def seeded_order(n: int, seed: int = 42) -> list[int]:
    """A permutation of ``range(n)``: nanochat's ``HubDataset.shuffle(seed)`` order."""
    return np.random.default_rng(seed).permutation(n).tolist()


class Task:
    """Examples (``rows``) seen through a slice; subclasses say how a row becomes a conversation.

    Subclasses set ``name``, ``kind`` and ``random_baseline`` and implement
    ``get_example(index) -> dict`` (a conversation: ``{"messages": [...], ...}`` plus whatever
    the scorer needs) and, for chat tasks, ``evaluate(conversation, completion) -> bool``.
    """
    name: str = "task"
    kind: str = "generative"
    random_baseline: float = 0.0

    def __init__(self, rows: Sequence[Any], start: int = 0, stop: int | None = None, step: int = 1):
        if start < 0 or step < 1 or (stop is not None and stop < start):
            raise UserError(f"{self.name}: bad slice start={start} stop={stop} step={step}")
        self.rows = rows
        self.start, self.stop, self.step = start, stop, step

    def num_examples(self) -> int:
        """Rows in the underlying data, before slicing."""
        return len(self.rows)

    def __len__(self) -> int:
        stop = self.num_examples() if self.stop is None else min(self.stop, self.num_examples())
        return max(0, -(-(stop - self.start) // self.step))

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < len(self):
            raise IndexError(f"{self.name}: example {i} of {len(self)}")
        return self.get_example(self.start + i * self.step)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def get_example(self, index: int) -> dict:
        """The conversation of row ``index``: each kind of task says how its rows read (the interface)."""
        raise TypeError(f"{type(self).__name__} must define get_example(index): how its rows become conversations")

    def evaluate(self, conversation: dict, completion: str) -> bool:
        """Whether ``completion`` answers ``conversation``; only tasks with a checkable answer have one."""
        raise UserError(f"{self.name} has no checkable answer, so a completion cannot be scored or rewarded; "
                        "choose a task that has one (e.g. arithmetic, spelling)")

    def reward(self, conversation: dict, completion: str) -> float:
        """RL's reward (Phase 8): 1.0 for a correct completion, else 0.0."""
        return float(self.evaluate(conversation, completion))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self)} examples, {self.kind})"


INDEX_BYTES = 100            # one entry of the shuffled index
CONVERSATION_BYTES = 2000   # one generated conversation held in memory: an upper estimate, 20x an index entry


def check_index_fits(total: int, generated: int = 0) -> None:
    """Refuse a mixture whose shuffled index (``total`` entries) and ``generated`` conversations held
    in memory would not fit in half the machine's memory (``arithmetic:3*1000000000`` listed 3e9
    entries for minutes, then died)."""
    from phases.phase1_transformer.config import gib
    from phases.phase1_transformer.memory import device_memory
    have = device_memory("cpu")
    need = total * INDEX_BYTES + generated * CONVERSATION_BYTES
    if have is not None and need > have / 2:
        raise UserError(f"a mixture of {total:,} conversations ({generated:,} generated) needs about {gib(need)}, "
                        f"more than half of this machine's {gib(have)}: use fewer epochs or smaller counts")


class TaskMixture:
    """Several tasks as one shuffled sequence of conversations.

    ``epochs``: how many times each task's examples appear (one number for all, or one per
    task). The order is fixed by ``seed``: the same mixture is the same sequence everywhere.
    """

    def __init__(self, tasks: Sequence[Task], epochs: int | Sequence[int] = 1, seed: int = 42):
        if not tasks:
            raise UserError("a task mixture needs at least one task")
        per_task = [epochs] * len(tasks) if isinstance(epochs, int) else list(epochs)
        if len(per_task) != len(tasks) or any(e < 0 for e in per_task):
            raise UserError(f"epochs must be one number >= 0 or one per task ({len(tasks)}), got {epochs!r}")
        self.tasks, self.epochs, self.seed = list(tasks), per_task, seed
        check_index_fits(sum(e * len(task) for e, task in zip(per_task, self.tasks)))
        self.index = [(t, i) for t, task in enumerate(self.tasks)
                      for _ in range(per_task[t]) for i in range(len(task))]
        random.Random(seed).shuffle(self.index)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k: int) -> dict:
        t, i = self.index[k]
        return self.tasks[t][i]

    def __iter__(self):
        return (self[k] for k in range(len(self)))

    def source(self, k: int) -> tuple[str, int]:
        """(task name, example index) of the ``k``-th conversation: for logs and debugging."""
        t, i = self.index[k]
        return self.tasks[t].name, i

    def counts(self) -> dict[str, int]:
        """How many conversations each task contributes."""
        out: dict[str, int] = {}
        for t, task in enumerate(self.tasks):
            out[task.name] = out.get(task.name, 0) + self.epochs[t] * len(task)
        return out
