"""Fast in-context scoring: shared prefixes computed once, logits only where scored, many items per forward.

nanochat scores an in-context item by running each of its sequences in full (one forward per
item) and computing the logits of every position. On a CPU at the demo's size that work is
compute-bound, so batching alone gains little. Three things remove work instead:

1. **Shared prefixes.** The choices of a multiple-choice item repeat the same context (ten
   worked examples and a question) and differ only at the end. The context goes through the
   model once, into Phase 6's KV cache, and is copied to one cache row per choice
   (``KVCache.copy_prefix``); then only the choices' own tokens are run, each row at its own
   position. A 10-shot item of four choices costs one context instead of four.
2. **Logits only where scored.** The output layer (width x vocabulary multiply-adds per
   token, then the softcap over the vocabulary) is applied only to the positions whose
   prediction is scored: a forward pre-hook on ``lm_head`` keeps just those rows of its input.
3. **Rows of similar lengths together.** A right-padded batch computes its padding too: the
   continuations of HellaSwag's endings or of whole sentences vary in length, and one
   forward padded to the longest did about twice the real work. Each pass runs its rows in
   groups of similar length (``by_length``).

Many items go into each forward (``batch_tokens`` bounds the tokens of a batch). Every
sequence ``(tokens, start, end)`` is split into its prefix ``tokens[:start]`` and its
continuation ``tokens[start:end]``; identical prefixes in a batch are computed once. The
first continuation token is predicted from the prefix's last position, the others from the
continuation's own positions. The result per sequence is what ``core.score_sequences``
returns: (mean continuation loss, whether greedy decoding reproduces it), equal up to float
rounding (the cached path attends through per-row masks).

What it leaves out: sharing between items (only identical prefixes within a batch are
merged); skipping the last block at prefix positions (later passes read only its keys and
values there, so its queries, attention and MLP are wasted; removing them needs a change to
Phase 1's forward);
GPU-specific kernels (FlashAttention's varlen path would avoid the padding altogether).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from phases.phase6_inference.kv_cache import KVCache


@contextlib.contextmanager
def logits_only_at(model, rows: torch.Tensor, cols: torch.Tensor):
    """Inside the block, ``model(ids)`` returns logits (1, K, V) for positions (rows[k], cols[k]) only."""
    handle = model.lm_head.register_forward_pre_hook(lambda module, args: (args[0][rows, cols][None],))
    try:
        yield
    finally:
        handle.remove()


def _padded(seqs: list[list[int]], pad_id: int) -> torch.Tensor:
    ids = torch.full((len(seqs), max(len(s) for s in seqs)), pad_id, dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, :len(s)] = torch.tensor(s)
    return ids                                                               # (B, T) right-padded


def _loss_and_greedy(logits: torch.Tensor, cont: list[int]) -> tuple[float, bool]:
    if not cont:                 # a choice that is a prefix of another has no tokens of its own
        return float("nan"), True
    target = torch.tensor(cont, dtype=torch.long, device=logits.device)     # logits (L, V) predict cont
    return F.cross_entropy(logits.float(), target).item(), bool(torch.equal(logits.argmax(-1), target))


MIN_FILL, MIN_TOKENS = 0.75, 512


def by_length(lengths: list[int]) -> list[list[int]]:
    """Indices grouped by similar length, longest first: each row of a group fills at least
    ``MIN_FILL`` of the group's width, so padding stays under a third of the work (on a CPU a
    padded token costs what a real one does). Short rows are cheap: a group closes only once it
    holds ``MIN_TOKENS`` padded tokens, so they do not each cost a forward of their own."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and (lengths[i] >= MIN_FILL * lengths[groups[-1][0]]
                       or len(groups[-1]) * lengths[groups[-1][0]] < MIN_TOKENS):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


@torch.no_grad()
def score_plain(model, seqs: list[tuple[list[int], int, int]], pad_id: int) -> list[tuple[float, bool]]:
    """Right-padded forwards of similar lengths; the output layer only at each sequence's scored positions."""
    device = model.lm_head.weight.device
    results: list[tuple[float, bool]] = [(0.0, False)] * len(seqs)
    for group in by_length([len(t) for t, _, _ in seqs]):
        part = [seqs[j] for j in group]
        rows = torch.tensor([r for r, (_, s, e) in enumerate(part) for _ in range(s, e)])
        cols = torch.tensor([c for _, s, e in part for c in range(s - 1, e - 1)])
        with logits_only_at(model, rows.to(device), cols.to(device)):
            out = model(_padded([t for t, _, _ in part], pad_id).to(device))[0]     # (K, V)
        k = 0
        for j, (t, s, e) in zip(group, part):
            results[j] = _loss_and_greedy(out[k:k + e - s], t[s:e])
            k += e - s
    return results


# --8<-- [start:shared]
@torch.no_grad()
def score_cached(model, seqs: list[tuple[list[int], int, int]], pad_id: int) -> list[tuple[float, bool]]:
    """The same, with each distinct prefix run once into Phase 6's KV cache and copied to its sequences."""
    device = model.lm_head.weight.device
    prefixes: dict[tuple[int, ...], int] = {}
    owner_of = [prefixes.setdefault(tuple(t[:s]), len(prefixes)) for t, s, _ in seqs]
    prefixes_list = list(prefixes)
    U, plens = len(prefixes), [len(p) for p in prefixes]
    conts = [t[s:e] for t, s, e in seqs]
    # cache rows: 0..U-1 hold the distinct prefixes, then one row per sequence
    cache = KVCache.for_model(model, U + len(seqs), max(plens) + max(map(len, conts)))
    # 1. every distinct prefix once; only its last position's logits (they predict the first continuation token)
    first: list[torch.Tensor | None] = [None] * U                           # U rows of (1, V)
    for group in by_length(plens):
        last = torch.tensor([plens[u] - 1 for u in group], device=device)
        with logits_only_at(model, torch.arange(len(group), device=device), last):
            out = model(_padded([prefixes_list[u] for u in group], pad_id).to(device),
                        kv_cache=cache.view(group))[0]                       # (G, V)
        for i, u in enumerate(group):
            first[u] = out[i:i + 1]
    for u, n in enumerate(plens):
        cache.truncate(u, n)                                                 # forget the padding
    for j, u in enumerate(owner_of):
        cache.copy_prefix(u, U + j, plens[u])
    # 2. each continuation but its last token, every row at its own position, rows of similar lengths together
    todo = [j for j, c in enumerate(conts) if len(c) > 1]
    rest: dict[int, torch.Tensor] = {}
    for group in by_length([len(conts[j]) - 1 for j in todo]):
        part = [todo[g] for g in group]
        rows = torch.tensor([i for i, j in enumerate(part) for _ in range(len(conts[j]) - 1)], device=device)
        cols = torch.tensor([k for j in part for k in range(len(conts[j]) - 1)], device=device)
        with logits_only_at(model, rows, cols):
            out = model(_padded([conts[j][:-1] for j in part], pad_id).to(device),
                        kv_cache=cache.view([U + j for j in part]))[0]        # (K, V)
        k = 0
        for j in part:
            rest[j], k = out[k:k + len(conts[j]) - 1], k + len(conts[j]) - 1
    return [_loss_and_greedy(torch.cat([first[owner_of[j]], rest.get(j, first[0][:0])]), cont)
            for j, cont in enumerate(conts)]
# --8<-- [end:shared]


def score_shared(model, seqs: list[tuple[list[int], int, int]], pad_id: int) -> list[tuple[float, bool]]:
    """(mean continuation loss, greedy reproduces it) per sequence: shared prefixes through the cache,
    the rest in one plain forward (the cache's two passes cost more than they save for them)."""
    count: dict[tuple[int, ...], int] = {}
    for t, s, _ in seqs:
        count[tuple(t[:s])] = count.get(tuple(t[:s]), 0) + 1
    shared = [j for j, (t, s, _) in enumerate(seqs) if count[tuple(t[:s])] > 1]
    alone = [j for j in range(len(seqs)) if count[tuple(seqs[j][0][:seqs[j][1]])] == 1]
    results: dict[int, tuple[float, bool]] = {}
    for part, score in ((shared, score_cached), (alone, score_plain)):
        if part:
            results.update(zip(part, score(model, [seqs[j] for j in part], pad_id)))
    return [results[j] for j in range(len(seqs))]


def batches(items: list[list[tuple[list[int], int, int]]], batch_tokens: int) -> list[list[int]]:
    """Group item indices so each batch's padded prefix and continuation tokens stay within ``batch_tokens``."""
    def cost(seqs):  # distinct prefixes once, continuations per sequence
        return len({tuple(t[:s]) for t, s, _ in seqs}), max(s for _, s, _ in seqs), len(seqs), \
            max(e - s for _, s, e in seqs)
    order = sorted(range(len(items)), key=lambda i: -max(s for _, s, _ in items[i]))
    groups, group, acc = [], [], (0, 0, 0, 0)
    for i in order:
        u, p, n, c = cost(items[i])
        nxt = (acc[0] + u, max(acc[1], p), acc[2] + n, max(acc[3], c))
        if group and nxt[0] * nxt[1] + nxt[2] * nxt[3] > batch_tokens:
            groups.append(group)
            group, nxt = [], (u, p, n, c)
        group.append(i)
        acc = nxt
    return groups + ([group] if group else [])
