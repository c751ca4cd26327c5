"""Chat evaluations: letters read from the logits, answers generated and checked, pass@k, ChatCORE.

**Categorical** (ARC, MMLU; nanochat's ``run_categorical_eval``): each conversation is
rendered up to ``<|assistant_start|>``; one forward pass over a right-padded batch gives, at
each prompt's last position, the logits of the next token. Restricted to the item's answer
letters, their argmax is the prediction. No sampling, so no seed and no noise.

**Generative** (GSM8K, HumanEval): the conversations go through Phase 6's engine, **many
problems per call** (``batch_problems``; nanochat generates one problem at a time), each with
``num_samples`` samples, and every completion is judged by its task (HumanEval's in the
sandbox, several at once). A problem counts as solved if any sample is right (nanochat's
"any of k"); ``pass@k`` is also reported with the unbiased estimator of Chen et al. (2021),
which is what the HumanEval paper means by pass@k.

**Ranks** take problems ``rank, rank + world, …``; per-problem counts are summed across ranks.
**ChatCORE** (nanochat): the mean over ARC-Easy, ARC-Challenge, MMLU, GSM8K and HumanEval of
``(acc - baseline) / (1 - baseline)``, baselines 0.25, 0.25, 0.25, 0, 0; only when all five ran.

Phase 8 calls ``run_categorical`` / ``run_generative`` during training (its ``extra_eval``).

What it leaves out: LLM-as-judge scoring, chat few-shot prompting, majority voting.
"""
from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from phases.common.console import UserError, progress
from phases.phase0_tokenizer.chat import render_for_completion
from phases.phase7_eval.chat_tasks import CHAT_TASKS
from phases.phase7_eval.core import Scored, pack
from phases.phase7_eval.tasks import Task


@dataclass
class ChatResult(Scored):
    name: str
    kind: str
    n: int
    correct: int                  # problems solved by at least one sample
    random_baseline: float
    seconds: float
    num_samples: int = 1
    pass_at: dict[int, float] = field(default_factory=dict)   # k -> unbiased pass@k
    examples: list[dict] = field(default_factory=list)        # a few (prompt, completion, ok) for the report
    notes: list[str] = field(default_factory=list)
    texts: dict[int, list[str]] = field(default_factory=dict)  # problem -> completions (keep_texts)


# --8<-- [start:pass_at_k]
def pass_at_k(n: int, c: int, k: int) -> float:
    """Chance that at least one of ``k`` samples drawn from ``n`` (``c`` correct) is correct.

    1 - C(n-c, k) / C(n, k), computed as a product so it never overflows (Chen et al., 2021).
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))
# --8<-- [end:pass_at_k]


def chatcore(results: list[ChatResult]) -> float | None:
    """nanochat's ChatCORE, or None unless all five tasks were evaluated."""
    by_name = {r.name: r for r in results}
    if any(name not in by_name for name in CHAT_TASKS):
        return None
    return sum(by_name[name].centered for name in CHAT_TASKS) / len(CHAT_TASKS)


def _mine(task: Task, runtime, max_problems: int) -> tuple[int, list[int]]:
    n = len(task) if max_problems < 0 else min(len(task), max_problems)
    rank, world = (runtime.rank, runtime.world_size) if runtime is not None else (0, 1)
    return n, list(range(rank, n, world))


def _reduce(runtime, values: list[float]) -> list[float]:
    return runtime.sum(values) if runtime is not None and runtime.world_size > 1 else values


# --8<-- [start:categorical]
@torch.no_grad()
def predict_letters(model, tok, conversations: list[dict], batch_tokens: int = 2048, bar=None) -> list[str]:
    """For each conversation, the allowed letter with the highest next-token logit (batched).

    A prompt longer than the model's ``sequence_len`` keeps its last tokens (the choices and
    the instruction), as the in-context scorer does.
    """
    device = next(model.parameters()).device
    T = model.config.sequence_len
    prompts = [render_for_completion(tok, c)[-T:] for c in conversations]
    letter_id: dict[str, int] = {}
    for c in conversations:
        for letter in c["letters"]:
            ids = tok.encode(letter)
            if len(ids) != 1:
                raise UserError(f"answer letter {letter!r} is {len(ids)} tokens; it must be one")
            letter_id[letter] = ids[0]
    out = [""] * len(conversations)
    model.eval()
    for group in pack(list(range(len(prompts))), [len(p) for p in prompts], batch_tokens):
        width = max(len(prompts[i]) for i in group)
        ids = torch.full((len(group), width), tok.bos_token_id, dtype=torch.long)   # right-padded
        for row, i in enumerate(group):
            ids[row, :len(prompts[i])] = torch.tensor(prompts[i])
        last = torch.tensor([len(prompts[i]) - 1 for i in group], device=device)
        logits = model(ids.to(device), keep=(torch.arange(len(group), device=device), last))  # (B, V)
        for row, i in enumerate(group):
            letters = conversations[i]["letters"]
            focus = logits[row, [letter_id[c] for c in letters]]                       # (letters,)
            out[i] = letters[int(focus.argmax())]
        if bar is not None:
            bar.update(len(group))
    return out


def run_categorical(model, tok, task: Task, runtime=None, max_problems: int = -1, batch_tokens: int = 2048,
                    show_progress: bool = False) -> ChatResult:
    """Accuracy on a categorical task: the answer letter with the highest logit."""
    t0 = time.perf_counter()
    n, mine = _mine(task, runtime, max_problems)
    convs = [task[i] for i in mine]
    with progress(total=len(mine), desc=task.name, unit="q", enabled=show_progress) as bar:
        letters = predict_letters(model, tok, convs, batch_tokens, bar)
    T = model.config.sequence_len
    cropped = sum(len(render_for_completion(tok, c)) > T for c in convs)
    cropped = int(_reduce(runtime, [float(cropped)])[0])
    correct = [0.0] * n
    for i, conv, letter in zip(mine, convs, letters):
        correct[i] = float(task.evaluate(conv, letter))
    correct = _reduce(runtime, correct)
    notes = [f"{cropped} prompt(s) longer than {T} tokens kept their last {T}"] if cropped else []
    return ChatResult(task.name, task.kind, n, int(round(sum(correct))), task.random_baseline,
                      time.perf_counter() - t0, notes=notes)
# --8<-- [end:categorical]


def run_generative(engine, tok, task: Task, runtime=None, max_problems: int = -1, num_samples: int = 1,
                   max_new_tokens: int = 512, temperature: float = 0.0, top_k: int | None = 50, seed: int = 42,
                   batch_problems: int = 16, workers: int = 2, show_progress: bool = False,
                   keep_texts: bool = False) -> ChatResult:
    """Solve rate on a generative task: batched generation through Phase 6's engine, then each task's judge.

    ``keep_texts``: keep every completion of this rank in ``result.texts`` (problem -> samples).
    """
    t0 = time.perf_counter()
    n, mine = _mine(task, runtime, max_problems)
    counts, any_ok = [0.0] * n, [0.0] * n      # per problem: correct samples; solved by any
    examples, notes, kept = [], [], {}
    with progress(total=len(mine), desc=task.name, unit="problem", enabled=show_progress) as bar, \
            ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(mine), batch_problems):
            group = mine[start:start + batch_problems]
            convs = [task[i] for i in group]
            prompts = [render_for_completion(tok, c) for c in convs]
            room = engine.max_context - max(len(p) for p in prompts)
            if room < 1:
                notes.append(f"problems {group} skipped: a prompt fills the {engine.max_context}-token context")
                bar.update(len(group))
                continue
            outs = engine.generate_batch(prompts, num_samples=num_samples, max_tokens=min(max_new_tokens, room),
                                         temperature=temperature, top_k=top_k, seed=seed)
            texts = [[""] * num_samples for _ in group]
            for c in outs:
                texts[c.prompt_index][c.sample_index] = c.text
            verdicts = list(pool.map(lambda pc: task.evaluate(*pc),
                                     [(convs[p], t) for p in range(len(group)) for t in texts[p]]))
            for p, i in enumerate(group):
                if keep_texts:
                    kept[i] = texts[p]
                ok = verdicts[p * num_samples:(p + 1) * num_samples]
                counts[i], any_ok[i] = float(sum(ok)), float(any(ok))
                if len(examples) < 3:
                    examples.append({"prompt": convs[p]["messages"][0]["content"], "completion": texts[p][0],
                                     "correct": bool(ok[0])})
            bar.update(len(group))
    both = _reduce(runtime, counts + any_ok)
    counts, any_of_k = [int(round(c)) for c in both[:n]], int(round(sum(both[n:])))
    pass_at = {k: sum(pass_at_k(num_samples, c, k) for c in counts) / n
               for k in sorted({1, num_samples} | {k for k in (5, 10) if k < num_samples})} if n else {}
    return ChatResult(task.name, task.kind, n, any_of_k, task.random_baseline, time.perf_counter() - t0,
                      num_samples, pass_at, examples, notes, kept)
