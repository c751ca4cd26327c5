"""Bits per byte three ways: on the validation shard, per genre, and on the gold answers of generative tasks.

All three are Phase 2's ``evaluate_bpb``: summed cross-entropy (nats) of the scored target
tokens over ln 2 × the UTF-8 bytes they stand for. Why bytes and not tokens: a tokenizer
with longer tokens has fewer, harder predictions per text; per byte, models with different
vocabularies (or a retrained tokenizer) compare fairly.

- ``val_bpb``: the run's own validation batches (Phase 5's ``val_batches`` with the run's
  batch size, sequence length and ``eval_tokens``), so it equals the last val bpb the run
  logged while training: a check that evaluation and training measure the same thing.
- ``genre_bpb``: Phase 0's four genre samples (prose, code, maths, other languages): where
  the model is at home and where it is lost.
- ``gold_bpb``: the loss of the *reference* answer of GSM8K or HumanEval, given the
  question (OLMo's ``gold_bpb`` trick). A small model solves 0% of GSM8K at any size we can
  train on a laptop, so accuracy cannot show progress; the gold answer's bpb still falls as
  the model improves. ``chat=False`` scores plain text (``Question: …\\nAnswer: …`` / the
  function's body after its signature), ``chat=True`` the assistant turn of the conversation.

Sequences longer than the model's context keep their last tokens (the answer is at the end).
With several ranks each scores its share and the sums are added.
What it leaves out: bpb of multiple-choice answers (OLMo's ``bpb`` metric for RC tasks).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from phases.phase0_tokenizer.chat import render_conversation
from phases.phase0_tokenizer.evaluate import GENRES
from phases.phase2_training.evaluate import evaluate_bpb, token_byte_lengths
from phases.phase7_eval.core import pack


@dataclass
class BpbResult:
    name: str
    bpb: float
    nats: float
    bytes: float
    sequences: int
    notes: list[str] = field(default_factory=list)


def _sum(runtime, name: str, nats: float, nbytes: float, sequences: int) -> BpbResult:
    if runtime is not None and runtime.world_size > 1:
        nats, nbytes, sequences = runtime.sum([nats, nbytes, float(sequences)])
    bpb = nats / (math.log(2) * nbytes) if nbytes else float("nan")
    return BpbResult(name, bpb, nats, nbytes, int(sequences))


def rows_bpb(model, tok, rows: list[tuple[list[int], list[int]]], batch_tokens: int = 8192) -> tuple[float, float]:
    """(nats, bytes) over ``rows`` of (inputs, targets), targets -1 where not scored; batched with padding."""
    device = next(model.parameters()).device
    token_bytes = token_byte_lengths(tok, device)
    batches = []
    for group in pack(list(range(len(rows))), [len(r[0]) for r in rows], batch_tokens):
        width = max(len(rows[i][0]) for i in group)
        x = torch.full((len(group), width), tok.bos_token_id, dtype=torch.long)
        y = torch.full((len(group), width), -1, dtype=torch.long)
        for row, i in enumerate(group):
            x[row, :len(rows[i][0])] = torch.tensor(rows[i][0])
            y[row, :len(rows[i][1])] = torch.tensor(rows[i][1])
        batches.append((x.to(device), y.to(device)))
    if not batches:
        return 0.0, 0.0
    _, nats, nbytes = evaluate_bpb(model, batches, token_bytes)
    return nats, nbytes


def windows(ids: list[int], scored: list[bool], length: int) -> list[tuple[list[int], list[int]]]:
    """Cut a token list into (inputs, targets) rows of at most ``length``; unscored targets are -1."""
    out = []
    for s in range(0, max(1, len(ids) - 1), length):
        chunk, keep = ids[s:s + length + 1], scored[s:s + length + 1]
        if len(chunk) >= 2:
            out.append((chunk[:-1], [t if k else -1 for t, k in zip(chunk[1:], keep[1:])]))
    return out


def val_bpb(model, tok, meta: dict, data_dir: str | Path, runtime=None, max_tokens: int | None = None) -> BpbResult:
    """The run's validation bpb, on the run's own validation batches."""
    from phases.phase5_data.loader import val_batches
    from phases.phase5_data.stream import split_paths
    cfg = meta.get("train_config", {})
    rank, world = (runtime.rank, runtime.world_size) if runtime is not None else (0, 1)
    device = next(model.parameters()).device
    batches = val_batches(split_paths(Path(data_dir), "val"), tok, cfg.get("device_batch_size", 8),
                          model.config.sequence_len, max_tokens or cfg.get("eval_tokens", 65536), rank, world,
                          device, buffer_size=cfg.get("doc_buffer", 1000))
    _, nats, nbytes = evaluate_bpb(model, batches, token_byte_lengths(tok, device))
    return _sum(runtime, "validation shard", nats, nbytes, sum(len(x) for x, _ in batches))


def genre_bpb(model, tok) -> list[BpbResult]:
    """bpb on each of Phase 0's genre samples (a few hundred bytes each: a rough but telling view)."""
    out = []
    for name, text in GENRES.items():
        ids = tok.encode(text, prepend=tok.bos_token_id)
        rows = windows(ids, [True] * len(ids), model.config.sequence_len)
        nats, nbytes = rows_bpb(model, tok, rows)
        out.append(_sum(None, name, nats, nbytes, len(rows)))
    return out


def gold_bpb(model, tok, task, chat: bool = False, runtime=None, max_problems: int = -1) -> BpbResult:
    """bpb of ``task``'s reference answers given their questions (only the answer is scored)."""
    n = len(task) if max_problems < 0 else min(len(task), max_problems)
    rank, world = (runtime.rank, runtime.world_size) if runtime is not None else (0, 1)
    length, rows, cropped = model.config.sequence_len, [], 0
    for i in range(rank, n, world):
        if chat:
            ids, mask = render_conversation(tok, task[i], max_tokens=1 << 30)
        else:
            prompt, answer = task.plain_text(i)
            p, a = tok.encode(prompt, prepend=tok.bos_token_id), tok.encode(answer)
            ids, mask = p + a, [0] * len(p) + [1] * len(a)
        cropped += len(ids) > length + 1
        ids, mask = ids[-(length + 1):], mask[-(length + 1):]     # keep the answer's end
        rows.append((ids[:-1], [t if m else -1 for t, m in zip(ids[1:], mask[1:])]))
    nats, nbytes = rows_bpb(model, tok, rows)
    result = _sum(runtime, f"{task.name} gold answers ({'chat' if chat else 'plain'})", nats, nbytes, len(rows))
    if runtime is not None and runtime.world_size > 1:
        cropped = int(runtime.sum([float(cropped)])[0])
    if cropped:
        result.notes.append(f"{cropped} sequence(s) longer than {length} tokens kept their last {length}")
    return result
