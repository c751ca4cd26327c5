"""CORE-style in-context evaluation: how well a *base* model does tasks from a few examples.

The DCLM paper's CORE score (nanochat's base-model metric) runs 22 tasks in three item
types, each scored from the model's losses, never from generated text:

- **multiple_choice** (ARC, HellaSwag, …): one context, several continuations. The choices
  start where their token lists stop agreeing (the common prefix); the choice whose tokens
  have the lowest *mean* loss wins.
- **schema** (Winograd, Winogrande): several contexts, one continuation, found as the common
  token suffix; the context under which the continuation has the lowest mean loss wins.
- **language_modeling** (LAMBADA, SQuAD, …): the greedy argmax at every continuation
  position must reproduce the continuation exactly.

Prompts are nanochat's: ``num_fewshot`` solved examples (drawn with ``Random(1234 + index)``,
never the item itself), each followed by a blank line, then the item; the task's
``delimiter`` joins context and continuation. Items are shuffled with ``Random(1337)`` and
capped at ``max_per_task``; the few-shot pool is the capped list, as in nanochat. Asking for
more shots than the pool holds (nanochat #550 crashes) caps the shots and says so.
Sequences longer than the model's ``sequence_len`` keep their last tokens.

**Speed**: nanochat runs one item (its 2-4 choices) per forward pass, every position's
logits computed. ``scoring.py`` runs many items per forward (up to ``batch_tokens``
tokens), each item's shared stem once (Phase 6's KV cache), and the last block and the output
layer only where a prediction is scored: the same numbers up to float rounding, several times faster.
``batch_tokens=0`` runs one item at a time, as nanochat (``score_sequences``).

**Ranks** take items ``rank, rank + world, …``; the per-item results are summed across ranks.
**Score**: ``centered = (acc - baseline) / (1 - baseline)``, 0 at chance and 1 when perfect;
CORE is the mean centered score over the 22 tasks (a subset is named as one).

What it leaves out: length-normalised and PMI scoring (OLMo's ``acc_per_char`` / ``pmi_dc``),
jinja templates (the three templates are three f-strings).
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from phases.common.console import UserError, progress
from phases.phase7_eval.scoring import CachePool, batches, common_length, score_items
from phases.phase7_eval.tasks import Task

ITEM_TYPES = ("multiple_choice", "schema", "language_modeling")
SHUFFLE_SEED, FEWSHOT_SEED = 1337, 1234
CORE_TASKS = 22


class ICLTask(Task):
    """In-context items of one type: dicts in the eval bundle's format (see ``render``)."""
    kind = "in-context"

    def __init__(self, name: str, task_type: str, rows: list[dict], num_fewshot: int = 0,
                 delimiter: str = " ", random_baseline: float = 0.0, source: str = ""):
        if task_type not in ITEM_TYPES:
            raise UserError(f"{name}: unknown item type {task_type!r} (expected one of {', '.join(ITEM_TYPES)})")
        super().__init__(rows)
        self.name, self.task_type, self.num_fewshot = name, task_type, num_fewshot
        self.delimiter, self.random_baseline, self.source = delimiter, random_baseline, source

    def get_example(self, index: int) -> dict:
        return self.rows[index]


# --8<-- [start:fewshot]
def fewshot_indices(n: int, index: int, k: int) -> list[int]:
    """``k`` distinct example indices for item ``index`` of ``n``, never ``index`` itself (nanochat's draw)."""
    return random.Random(FEWSHOT_SEED + index).sample([i for i in range(n) if i != index], k)
# --8<-- [end:fewshot]


# --8<-- [start:render]
def render(task_type: str, item: dict, shots: list[dict], d: str) -> list[str]:
    """The prompts of one item: one per choice (multiple choice, schema), or [without, with] (LM)."""
    if task_type == "multiple_choice":
        prefix = "".join(f"{s['query']}{d}{s['choices'][s['gold']]}\n\n" for s in shots)
        return [f"{prefix}{item['query']}{d}{choice}" for choice in item["choices"]]
    if task_type == "schema":
        prefix = "".join(f"{s['context_options'][s['gold']]}{d}{s['continuation']}\n\n" for s in shots)
        return [f"{prefix}{context}{d}{item['continuation']}" for context in item["context_options"]]
    prefix = "".join(f"{s['context'].strip()}{d}{s['continuation']}\n\n" for s in shots)
    without = f"{prefix}{item['context'].strip()}{d}"
    # stripped: a trailing space would merge into the continuation's first token
    return [without.strip(), without + item["continuation"]]
# --8<-- [end:render]


# --8<-- [start:spans]
def spans(task_type: str, tokens: list[list[int]], max_len: int) -> list[tuple[list[int], int, int]]:
    """(tokens, start, end) per sequence to score: the continuation is ``tokens[start:end]``."""
    if task_type == "multiple_choice":
        start = common_length(tokens)                      # choices begin where the prompts differ
        out = [(t, start, len(t)) for t in tokens]
    elif task_type == "schema":
        tail = common_length(tokens, from_end=True)        # the shared continuation
        out = [(t, len(t) - tail, len(t)) for t in tokens]
    else:
        without, with_ = tokens
        out = [(with_, common_length([without, with_]), len(with_))]
    cropped = []
    for t, s, e in out:                                    # too long: keep the last max_len tokens
        cut = max(0, len(t) - max_len)
        cropped.append((t[cut:], max(1, s - cut), e - cut))
    return cropped
# --8<-- [end:spans]


class Scored:
    """Accuracy and centred score of a result with ``n``, ``correct`` and ``random_baseline``."""

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else float("nan")

    @property
    def centered(self) -> float:
        return centered(self.accuracy, self.random_baseline)


@dataclass
class TaskResult(Scored):
    name: str
    task_type: str
    num_fewshot: int
    n: int
    correct: int
    random_baseline: float
    seconds: float
    source: str = ""
    notes: list[str] = field(default_factory=list)


# --8<-- [start:centered]
def centered(accuracy: float, baseline: float) -> float:
    """0 at chance, 1 at perfect: how far above guessing, as a share of the room above it."""
    return (accuracy - baseline) / (1.0 - baseline)


def core_score(results: list[TaskResult]) -> tuple[str, float]:
    """(name, mean centered accuracy): "CORE" only over all 22 tasks, else a named subset."""
    name = "CORE" if len(results) == CORE_TASKS else f"CORE-{len(results)} (subset: {len(results)} of {CORE_TASKS} tasks)"
    return name, sum(r.centered for r in results) / len(results)
# --8<-- [end:centered]


def prepare(task: ICLTask, tok, max_per_task: int, max_len: int) -> tuple[list, list[str]]:
    """Shuffle, cap, render and tokenise: per item, its (tokens, start, end) sequences and answer."""
    rows = list(task.rows)
    random.Random(SHUFFLE_SEED).shuffle(rows)
    if max_per_task > 0:
        rows = rows[:max_per_task]
    notes, k = [], task.num_fewshot
    if k > max(0, len(rows) - 1):
        notes.append(f"{k}-shot asked but only {len(rows) - 1} other items: capped to {max(0, len(rows) - 1)}")
        k = max(0, len(rows) - 1)
    prompts = [render(task.task_type, item, [rows[i] for i in fewshot_indices(len(rows), idx, k)] if k else [],
                      task.delimiter) for idx, item in enumerate(rows)]
    flat = iter(tok.encode_batch([p for ps in prompts for p in ps], prepend=tok.bos_token_id))  # one call
    items = [(spans(task.task_type, [next(flat) for _ in ps], max_len), item.get("gold", 0))
             for ps, item in zip(prompts, rows)]
    return items, notes


@torch.no_grad()
def score_sequences(model, seqs: list[tuple[list[int], int, int]], pad_id: int) -> list[tuple[float, bool]]:
    """nanochat's ``forward_model``: one forward over right-padded ``seqs``, the loss and the argmax at
    every position; per sequence (mean continuation loss, greedy reproduces the continuation)."""
    device = next(model.parameters()).device
    width = max(len(t) for t, _, _ in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    for row, (t, _, _) in enumerate(seqs):
        ids[row, :len(t)] = torch.tensor(t)
    ids = ids.to(device)
    logits = model(ids)                                                   # (B, T, V)
    B, T, V = logits.shape
    losses = F.cross_entropy(logits.view(B * T, V), ids.roll(-1, 1).view(B * T), reduction="none").view(B, T)
    predictions = logits.argmax(-1)                                       # (B, T)
    return [(losses[row, s - 1:e - 1].mean().item(), bool(torch.equal(predictions[row, s - 1:e - 1], ids[row, s:e])))
            for row, (_, s, e) in enumerate(seqs)]


# --8<-- [start:decide]
def decide(task_type: str, scored: list[tuple[float, bool]], gold: int) -> bool:
    """Is the item right? Lowest mean loss = the gold choice, or (LM) every token reproduced.

    A choice with no tokens of its own (a prefix of another choice) has no mean loss (NaN) and
    never wins; nanochat's ``min`` over a list with a NaN picks by position instead.
    """
    if task_type == "language_modeling":
        return scored[0][1]
    losses = [math.inf if math.isnan(loss) else loss for loss, _ in scored]
    return losses.index(min(losses)) == gold
# --8<-- [end:decide]


def pack(keys: list, lengths: list[int], batch_tokens: int) -> list[list]:
    """Group ``keys`` (longest first) into batches whose padded size stays within ``batch_tokens``."""
    groups, batch, width = [], [], 0
    for key, n in sorted(zip(keys, lengths), key=lambda kn: -kn[1]):
        if batch and (len(batch) + 1) * max(width, n) > batch_tokens:
            groups.append(batch)
            batch, width = [], 0
        batch.append(key)
        width = max(width, n)
    return groups + ([batch] if batch else [])


def evaluate_task(model, tok, task: ICLTask, runtime=None, max_per_task: int = -1, batch_tokens: int = 2048,
                  show_progress: bool = False) -> TaskResult:
    """Accuracy of ``model`` on ``task``; with a Phase 4 runtime, each rank scores its share."""
    rank, world = (runtime.rank, runtime.world_size) if runtime is not None else (0, 1)
    t0 = time.perf_counter()
    was_training = model.training
    model.eval()
    items, notes = prepare(task, tok, max_per_task, model.config.sequence_len)
    mine = list(range(rank, len(items), world))
    if batch_tokens > 0:   # many items per forward, shared stems once, logits only where scored
        groups = [[mine[k] for k in g] for g in batches([items[i][0] for i in mine], batch_tokens)]
        greedy, pool = task.task_type == "language_modeling", CachePool()     # only LM items ask for the argmax
        score = lambda model, its, pad_id: score_items(model, its, pad_id, batch_tokens, greedy, pool)  # noqa: E731
    else:                  # one item per forward, every position's logits (nanochat)
        groups = [[i] for i in mine]
        score = lambda model, its, pad_id: [score_sequences(model, its[0], pad_id)]  # noqa: E731
    scored: dict[int, list[tuple[float, bool]]] = {}
    with progress(total=len(mine), desc=task.name, unit="item", enabled=show_progress) as bar:
        for group in groups:
            scored.update(zip(group, score(model, [items[i][0] for i in group], tok.bos_token_id)))
            bar.update(len(group))
    correct = [0.0] * len(items)
    for i in mine:
        correct[i] = float(decide(task.task_type, scored[i], items[i][1]))
    if world > 1:
        correct = runtime.sum(correct)                 # each rank filled its own items
    model.train(was_training)
    k = min(task.num_fewshot, max(0, len(items) - 1))
    return TaskResult(task.name, task.task_type, k, len(items), int(round(sum(correct))), task.random_baseline,
                      time.perf_counter() - t0, task.source, notes)
