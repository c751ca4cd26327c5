"""What SFT and RL train on: Phase 7 ``Task``s, mixed by a one-line spec.

A spec is a comma-separated list of entries ``name[:count][*epochs]``:

    arithmetic:3000, spelling:500, stdlib:500, identity:200*2, followups:500   # the offline default
    smoltalk, mmlu_aux*3, gsm8k*4                                              # nanochat's SFT mixture
    arithmetic:2000, my_chats.jsonl*2                                          # plus a file of your own

- offline tasks (``offline.py``): ``arithmetic``, ``spelling``, ``stdlib``, ``identity``,
  ``followups``; ``count`` conversations are generated (default 1000);
- hub tasks, downloaded on first use through Phase 7's Hub reader (which goes through Phase
  5's downloader): ``smoltalk`` (HuggingFaceTB/smol-smoltalk), ``mmlu_aux`` (MMLU's
  auxiliary_train, as multiple choice), ``gsm8k`` (GSM8K with its ``<<expr=result>>``
  annotations as calculator calls, Phase 7's ``gsm8k_parts``); ``count`` caps the examples;
- a ``.jsonl`` file of conversations in either form (``conversations.py``).

``epochs`` repeats a task (nanochat oversamples MMLU 3x and GSM8K 4x). The same spec with
``split="test"`` gives the held-out counterparts (the offline generators' test split, the
hub sets' test split) for validation and evaluation. ``TaskMixture`` (Phase 7) shuffles all
of it with a fixed seed.

Offline tasks with an ``answer`` are scored like GSM8K (the number after ``####``), so one
evaluator (Phase 7's ``run_generative``) and one reward serve them all.

What it leaves out: weighting by tokens instead of by conversations, streaming datasets
larger than memory.

Run: ``python -m phases.phase8_sft.mixture "arithmetic:100, identity:20*2"`` prints the counts.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from phases.common.console import UserError
from phases.common.paths import base_dir
from phases.phase7_eval.chat_tasks import GSM8K, MMLU, extract_answer, same_number
from phases.phase7_eval.tasks import Task, TaskMixture, check_index_fits
from phases.phase8_sft import offline
from phases.phase8_sft.conversations import check_conversation, read_conversations

DEFAULT_COUNT = 1000
# name -> (repo, config, split) of its Hub parquet export, per split
HUB = {
    "smoltalk": {"train": ("HuggingFaceTB/smol-smoltalk", "default", "train"),
                 "test": ("HuggingFaceTB/smol-smoltalk", "default", "test")},
    "mmlu_aux": {"train": ("cais/mmlu", "auxiliary_train", "train"), "test": ("cais/mmlu", "all", "test")},
    "gsm8k": {"train": ("openai/gsm8k", "main", "train"), "test": ("openai/gsm8k", "main", "test")},
}


class Conversations(Task):
    """Ready-made conversations (generated, or read from a file); checkable ones carry ``answer``."""
    kind = "generative"

    def __init__(self, name: str, rows: list[dict], **slice_):
        super().__init__(rows, **slice_)
        self.name = name

    def get_example(self, index: int) -> dict:
        return self.rows[index]

    def evaluate(self, conversation: dict, completion: str) -> bool:
        if "answer" not in conversation:
            raise UserError(f"{self.name} has no checkable answers: it can be trained on, not scored")
        return same_number(extract_answer(completion), conversation["answer"])


class SmolTalk(Task):
    """SmolTalk's conversations (system, then alternating user/assistant), those our format accepts."""
    name, kind = "smoltalk", "generative"

    def __init__(self, rows, **slice_):
        valid = []
        for r in rows:
            try:
                valid.append(check_conversation({"messages": r["messages"]}))
            except ValueError:          # ConversationError: e.g. two user turns in a row
                continue
        super().__init__(valid, **slice_)
        self.skipped = len(rows) - len(valid)

    def get_example(self, index: int) -> dict:
        return self.rows[index]


@dataclass
class Entry:
    name: str
    count: int | None
    epochs: int


def parse_spec(spec: str) -> list[Entry]:
    """``"arithmetic:3000, identity:200*2"`` -> entries; a clear error for anything else."""
    out = []
    for raw in filter(None, (s.strip() for s in spec.split(","))):
        m = re.fullmatch(r"([^:*]+?)\s*(?::\s*(\d+))?\s*(?:\*\s*(\d+))?", raw)
        if not m:
            raise UserError(f"mixture entry {raw!r}: expected name[:count][*epochs], e.g. arithmetic:3000*2")
        name, count, epochs = m.group(1), m.group(2), m.group(3)
        if not (name in offline.TASKS or name in HUB or name.endswith(".jsonl")):
            raise UserError(f"mixture entry {raw!r}: unknown task {name!r}; choose from "
                            f"{', '.join([*offline.TASKS, *HUB])} or a .jsonl file")
        if (count and int(count) == 0) or (epochs and int(epochs) == 0):   # 0 would read as "the default"
            raise UserError(f"mixture entry {raw!r}: count and epochs must be >= 1")
        out.append(Entry(name, int(count) if count else None, int(epochs) if epochs else 1))
    if not out:
        raise UserError("the mixture spec is empty")
    return out


def parquet_rows(repo: str, config: str, split: str, show_progress: bool = True, endpoint: str | None = None
                 ) -> list[dict]:
    """The rows of a Hub dataset's parquet export, downloaded once into ``<base>/task_data``.

    Phase 7's ``hub_rows`` does this for its evaluation tasks only (a fixed table of test
    splits); until it takes any ``(repo, config, split)``, this calls it through a one-entry
    table of our own, so there is still one downloader.
    """
    from phases.phase7_eval import hub
    general = getattr(hub, "parquet_rows", None)
    if general is not None:
        return general(repo, config, split, show_progress=show_progress, endpoint=endpoint)
    key = f"{repo}/{config}/{split}"
    table = dict(hub.HUB_TASKS)
    table[key] = (repo, config, split)
    saved, hub.HUB_TASKS = hub.HUB_TASKS, table
    try:
        folder = base_dir() / "task_data" / repo.replace("/", "__") / config / split
        return hub.hub_rows(key, endpoint=endpoint, out=folder, show_progress=show_progress)
    finally:
        hub.HUB_TASKS = saved


def hub_task(name: str, split: str, show_progress: bool = True) -> Task:
    """A hub task's rows, downloaded on first use (Phase 7's reader, Phase 5's downloader)."""
    rows = parquet_rows(*HUB[name][split], show_progress=show_progress)
    if name == "smoltalk":
        return SmolTalk(rows)
    if name == "gsm8k":
        return GSM8K(rows)
    # auxiliary_train nests each row under "train" (the test split does not)
    return MMLU([r["train"] if "train" in r else r for r in rows])


def task_of(entry: Entry, split: str, seed: int = 0, show_progress: bool = True) -> Task:
    if entry.name in offline.TASKS:
        return Conversations(entry.name, offline.generate(entry.name, split, entry.count or DEFAULT_COUNT, seed))
    if entry.name.endswith(".jsonl"):
        rows = list(read_conversations(Path(entry.name).expanduser()))
        return Conversations(Path(entry.name).name, rows, stop=entry.count)
    task = hub_task(entry.name, split, show_progress)
    task.stop = entry.count
    return task


def build(spec: str, split: str = "train", seed: int = 42, show_progress: bool = True,
          per_task: int | None = None) -> TaskMixture:
    """The mixture of ``spec``. ``split="test"``: its held-out counterpart, each task once and at
    most ``per_task`` conversations of each; files have no test split and are left out of it."""
    entries = parse_spec(spec)
    if split == "test":
        entries = [Entry(e.name, min(e.count or DEFAULT_COUNT, per_task or DEFAULT_COUNT), 1)
                   for e in entries if not e.name.endswith(".jsonl")]
        if not entries:
            raise UserError(f"the mixture {spec!r} has no task with a held-out split (files have none)")
    generated = [e for e in entries if e.name in offline.TASKS]
    check_index_fits(sum((e.count or DEFAULT_COUNT) * e.epochs for e in generated),
                     sum(e.count or DEFAULT_COUNT for e in generated))
    tasks = [task_of(e, split, show_progress=show_progress) for e in entries]   # (before generating any)
    return TaskMixture(tasks, [e.epochs for e in entries], seed=seed)


def reward(tasks: TaskMixture | Task, k: int, completion: str) -> float:
    """The reward of ``completion`` for the ``k``-th conversation of a mixture (or a task): its task's judge."""
    if not isinstance(tasks, TaskMixture):
        return tasks.reward(tasks[k], completion)
    name, _ = tasks.source(k)
    return next(t for t in tasks.tasks if t.name == name).reward(tasks[k], completion)


if __name__ == "__main__":
    from phases.common.console import run_command

    def main():
        mixture = build(sys.argv[1] if len(sys.argv) > 1 else "arithmetic:100, identity:20*2")
        for name, n in mixture.counts().items():
            print(f"{name:>12}: {n:,} conversations")
        print(f"{'total':>12}: {len(mixture):,}")

    sys.exit(run_command(main))
