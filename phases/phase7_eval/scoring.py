"""Fast in-context scoring: shared stems computed once, the last block and the output layer only where scored.

nanochat scores an in-context item by running each of its sequences in full (one forward per
item) and computing the logits of every position. On a CPU at the demo's size that work is
compute-bound, so batching alone gains little. Four things remove work instead:

1. **Shared stems.** The sequences of one item begin alike: the choices of a multiple-choice
   item repeat the same context (ten worked examples and a question) and differ only at the
   end; the contexts of a schema item agree up to the blank ("The trophy does not fit in the
   suitcase because ..."). That common start, the item's *stem*, goes through the model
   once, into Phase 6's KV cache, and is copied to one cache row per sequence
   (``KVCache.copy_prefix``); then only each sequence's own tokens are run, every row at its
   own position. A 10-shot item of four choices costs one context instead of four.
2. **The output layer only where scored.** The output layer (width x vocabulary multiply-adds
   per token, then the softcap over the vocabulary) runs only at the positions whose
   prediction is scored: ``model(ids, keep=(rows, cols))`` (Phase 1), whose softcap then runs in
   place; the loss and argmax read those logits in cache-sized chunks (``Tally``): nanochat's
   fresh (tokens, V) tensors of the softcap and the loss cost more memory traffic than maths.
3. **The last block only where scored.** At the other positions the last block's output is
   never read, only its keys and values (by the scored positions); ``keep`` runs its
   queries, attention and MLP at the kept positions only.
4. **Rows of similar lengths together.** A right-padded batch computes its padding too: the
   continuations of HellaSwag's endings or of whole sentences vary in length, and one
   forward padded to the longest did about twice the real work. Each pass runs its rows in
   groups of similar length (``by_length``).

Many items go into each forward: ``batch_tokens`` bounds the padded tokens of one forward, and
a batch of items holds about ``FORWARDS_PER_BATCH`` forwards' worth, so that few of its forwards
run half empty (each forward reads every weight of the model once, whatever its size). Each
sequence ``(tokens, start, end)`` scores the predictions of ``tokens[start:end]``; the losses
(and, for language-modelling items, the argmax hits) of all scored positions of a forward are
computed together (``Tally``).
The result per sequence is what ``core.score_sequences`` returns: (mean continuation loss,
whether greedy decoding reproduces it), equal up to float rounding (the cached path attends
through per-row masks).

What it leaves out: stems shared across items (only identical stems within a batch are
merged); GPU-specific kernels (FlashAttention's varlen path would avoid the padding
altogether).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from phases.phase6_inference.kv_cache import KVCache

Seq = tuple[list[int], int, int]        # (tokens, start, end): score the predictions of tokens[start:end]
MIN_FILL, MIN_TOKENS = 0.75, 512
MIN_STEM = 8                            # a shorter common start saves too little to set up the cache for
FORWARDS_PER_BATCH = 16                 # a batch of items: about this many full forwards; its stems stay cached
CHUNK = 1 << 19                         # logits per loss/argmax call: 2 MB of fp32, about a CPU core's L2


def common_length(seqs: list[list[int]], from_end: bool = False) -> int:
    """Length of the token prefix (or suffix) shared by all ``seqs``."""
    if from_end:
        seqs = [s[::-1] for s in seqs]
    first, n = seqs[0], min(len(s) for s in seqs)
    for s in seqs[1:]:              # bisect on the longest equal slice: list equality runs in C
        lo, hi = 0, n
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if s[:mid] == first[:mid] else (lo, mid - 1)
        n = lo
    return n


class CachePool:
    """One KV cache reused by the batches of a task; a batch it cannot hold gets a new one, its own size.

    A new cache is zeroed, tens of MB at the demo's size, which the profile showed when every
    batch made its own. A reused cache still holds the last batch's keys and values past each
    row's end; the per-row masks give them weight exactly 0, and they are finite (0 x NaN would
    not vanish: why a new cache starts zeroed)."""

    def __init__(self):
        self.cache: KVCache | None = None

    def get(self, model, rows: int, max_len: int) -> KVCache:
        c = self.cache
        if c is None or c.batch < rows or c.max_len < max_len:
            if c is not None and max(rows, c.batch) * max(max_len, c.max_len) <= 2 * rows * max_len:
                rows, max_len = max(rows, c.batch), max(max_len, c.max_len)   # grown to hold both shapes
            self.cache = c = None                                # free the old one before making the new one
            self.cache = c = KVCache.for_model(model, rows, max_len)
        c.reset()
        return c


def _padded(seqs: list[list[int]], pad_id: int) -> torch.Tensor:
    ids = torch.full((len(seqs), max(len(s) for s in seqs)), pad_id, dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, :len(s)] = torch.tensor(s)
    return ids                                                               # (B, T) right-padded


class Tally:
    """The loss and argmax hit of every scored position, summed per sequence at the end."""

    def __init__(self, n: int, greedy: bool = True):
        self.n, self.greedy, self.owner, self.loss, self.miss = n, greedy, [], [], []

    def add(self, logits: torch.Tensor, targets: list[int], owners: list[int]) -> None:
        """logits (K, V) predict ``targets`` (K,), each scored for sequence ``owners[k]``. In chunks of
        ``CHUNK`` logits: each chunk's loss and argmax read it while it is still in the CPU's cache,
        and the loss's (rows, V) scratch tensor stays small. Without ``greedy`` no argmax: only
        language-modelling items ask whether greedy decoding reproduces the continuation."""
        target = torch.tensor(targets, dtype=torch.long, device=logits.device)      # (K,)
        step = max(1, CHUNK // logits.size(-1))
        for i in range(0, len(targets), step):
            z, t = logits[i:i + step].float(), target[i:i + step]                   # (step, V), (step,)
            self.loss.append(F.cross_entropy(z, t, reduction="none").cpu())
            if self.greedy:
                self.miss.append((z.argmax(-1) != t).float().cpu())
        self.owner.append(torch.tensor(owners, dtype=torch.long))

    def results(self) -> list[tuple[float, bool | None]]:
        """(mean loss, every position hit) per sequence; (nan, True) for one with nothing scored
        (a choice that is a prefix of another has no tokens of its own); hit None without ``greedy``."""
        if not self.owner:
            return [(float("nan"), True if self.greedy else None)] * self.n
        owner = torch.cat(self.owner)                                                # (K_all,)
        per_seq = lambda values: torch.zeros(self.n).index_add_(0, owner, torch.cat(values))  # noqa: E731
        count = torch.zeros(self.n).index_add_(0, owner, torch.ones(len(owner)))
        loss = per_seq(self.loss) / count                                            # (n,); 0 / 0 = nan
        if not self.greedy:
            return [(float(a), None) for a in loss]
        return [(float(a), float(b) == 0.0) for a, b in zip(loss, per_seq(self.miss))]


def by_length(lengths: list[int], max_tokens: int = 0) -> list[list[int]]:
    """Indices grouped by similar length, longest first: each row of a group fills at least
    ``MIN_FILL`` of the group's width, so padding stays under a third of the work (on a CPU a
    padded token costs what a real one does). Short rows are cheap: a group closes only once it
    holds ``MIN_TOKENS`` padded tokens, so they do not each cost a forward of their own. A group
    also closes where one more row would take it past ``max_tokens`` padded tokens (0: no bound)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for i in order:
        width = lengths[groups[-1][0]] if groups else 0
        if groups and (not max_tokens or (len(groups[-1]) + 1) * width <= max_tokens) and (
                lengths[i] >= MIN_FILL * width or len(groups[-1]) * width < MIN_TOKENS):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _run(model, rows_tokens: list[list[int]], scored: list[list[tuple[int, int, int]]], pad_id: int,
         tally: Tally, kv_cache=None) -> None:
    """One right-padded forward; ``scored[r]`` lists (position in row r, target, owner) to tally."""
    device = model.lm_head.weight.device
    rows = torch.tensor([r for r, s in enumerate(scored) for _ in s], dtype=torch.long, device=device)
    cols = torch.tensor([c for s in scored for c, _, _ in s], dtype=torch.long, device=device)
    out = model(_padded(rows_tokens, pad_id).to(device), kv_cache=kv_cache, keep=(rows, cols))    # (K, V)
    tally.add(out, [t for s in scored for _, t, _ in s], [o for s in scored for _, _, o in s])


@torch.no_grad()
def score_plain(model, seqs: list[Seq], pad_id: int, max_tokens: int = 0,
                greedy: bool = True) -> list[tuple[float, bool | None]]:
    """Right-padded forwards of similar lengths; the last block and the output layer only at scored positions."""
    tally = Tally(len(seqs), greedy)
    todo = [j for j, (_, s, e) in enumerate(seqs) if e > s]       # a sequence with nothing to score needs no run
    for group in by_length([seqs[j][2] - 1 for j in todo], max_tokens):   # the last token predicts nothing scored
        part = [todo[g] for g in group]
        scored = [[(c, seqs[j][0][c + 1], j) for c in range(seqs[j][1] - 1, seqs[j][2] - 1)] for j in part]
        _run(model, [seqs[j][0][:seqs[j][2] - 1] for j in part], scored, pad_id, tally)
    return tally.results()


# --8<-- [start:shared]
@torch.no_grad()
def score_cached(model, seqs: list[Seq], stems: list[int], pad_id: int, max_tokens: int = 0,
                 greedy: bool = True, pool: CachePool | None = None) -> list[tuple[float, bool | None]]:
    """The same, with each sequence's first ``stems[j]`` tokens (at most its ``start``) run once per
    distinct stem into Phase 6's KV cache (from ``pool`` when given) and copied to the sequences that share it."""
    tally = Tally(len(seqs), greedy)
    index: dict[tuple[int, ...], int] = {}
    owner_of = [index.setdefault(tuple(t[:p]), len(index)) for (t, _, _), p in zip(seqs, stems)]
    stem_list = list(index)
    U, plens = len(stem_list), [len(x) for x in stem_list]
    rests = [t[p:e - 1] for (t, _, e), p in zip(seqs, stems)]   # the rest; the last token predicts nothing
    # pass 2 scores from position max(start - 1, p) on; a sequence with nothing left there needs no row
    scored = [[(c - p, t[c + 1], j) for c in range(max(s - 1, p), e - 1)]
              for j, ((t, s, e), p) in enumerate(zip(seqs, stems))]
    todo = [j for j in range(len(seqs)) if scored[j]]
    first = by_length(plens, max_tokens)                                       # pass 1: stems
    second = [[todo[g] for g in group] for group in by_length([len(rests[j]) for j in todo], max_tokens)]
    # cache rows: the stems in pass order (each forward's rows contiguous: a view, not a copy), then the
    # rows of one pass-2 forward, reused by the next (a cache of every sequence would be mostly copies)
    stem_row = {u: r for r, u in enumerate(u for group in first for u in group)}
    width = max((len(part) for part in second), default=0)
    cache = (pool or CachePool()).get(model, U + width, max(plens) + max((len(rests[j]) for j in todo), default=0))
    # 1. every distinct stem once; the logits of its last position predict a continuation starting right after it
    direct: list[list[tuple[int, int, int]]] = [[] for _ in range(U)]     # (position, target, sequence)
    for j, u in enumerate(owner_of):
        if seqs[j][1] == plens[u] < seqs[j][2]:
            direct[u].append((plens[u] - 1, seqs[j][0][plens[u]], j))
    for group in first:
        _run(model, [stem_list[u] for u in group], [direct[u] for u in group], pad_id, tally,
             cache.view([stem_row[u] for u in group]))
    for u in range(U):
        cache.truncate(stem_row[u], plens[u])                                # forget the padding
    # 2. each sequence's rest, every row at its own position, rows of similar lengths together
    for part in second:
        rows_of: dict[int, list[int]] = {}
        for r, j in enumerate(part):
            rows_of.setdefault(owner_of[j], []).append(U + r)
        for u, rows in rows_of.items():                                      # each stem to its sequences' rows
            cache.copy_prefix(stem_row[u], rows, plens[u])
        _run(model, [rests[j] for j in part], [scored[j] for j in part], pad_id, tally,
             cache.view(list(range(U, U + len(part)))))
    return tally.results()
# --8<-- [end:shared]


def stem(seqs: list[Seq]) -> int:
    """How many tokens all sequences of one item share before any scored token: the context of
    a multiple-choice item, the words before the blank of a schema item."""
    return min(common_length([t for t, _, _ in seqs]), min(s for _, s, _ in seqs))


def stems(seqs: list[Seq]) -> list[int]:
    """Per sequence of one item, the stem it shares with others: the item's stem, or where that is
    short (a long prompt cut to the model's length loses a different number of tokens per choice),
    its whole prefix when another choice of the same length has the identical one."""
    common = stem(seqs) if len(seqs) > 1 else 0
    if common >= MIN_STEM:
        return [common] * len(seqs)
    count: dict[tuple[int, ...], int] = {}
    for t, s, _ in seqs:
        count[tuple(t[:s])] = count.get(tuple(t[:s]), 0) + 1
    return [s if count[tuple(t[:s])] > 1 else 0 for t, s, _ in seqs]


def score_items(model, items: list[list[Seq]], pad_id: int, max_tokens: int = 0, greedy: bool = True,
                pool: CachePool | None = None) -> list[list[tuple[float, bool | None]]]:
    """(mean continuation loss, greedy reproduces it) per sequence of each item: sequences that share
    a stem of ``MIN_STEM`` tokens or more through the cache, the rest in plain forwards; forwards of
    at most ``max_tokens`` padded tokens (0: no bound); ``greedy=False`` skips the argmax (hit None)."""
    seqs = [seq for item in items for seq in item]
    stem_of = [p for item in items for p in stems(item)]
    cached = [j for j, p in enumerate(stem_of) if p >= MIN_STEM]
    plain = [j for j, p in enumerate(stem_of) if p < MIN_STEM]
    flat: dict[int, tuple[float, bool | None]] = {}
    if cached:
        flat.update(zip(cached, score_cached(model, [seqs[j] for j in cached], [stem_of[j] for j in cached],
                                             pad_id, max_tokens, greedy, pool)))
    if plain:
        flat.update(zip(plain, score_plain(model, [seqs[j] for j in plain], pad_id, max_tokens, greedy)))
    out, k = [], 0
    for item in items:
        out.append([flat[j] for j in range(k, k + len(item))])
        k += len(item)
    return out


def batches(items: list[list[Seq]], batch_tokens: int) -> list[list[int]]:
    """Group item indices, longest first, so each batch's sequences hold at most ``FORWARDS_PER_BATCH``
    x ``batch_tokens`` tokens: about that many full forwards of ``batch_tokens``, and a bound on the
    batch's KV cache (its stems, and the rows of one forward)."""
    budget = FORWARDS_PER_BATCH * batch_tokens
    order = sorted(range(len(items)), key=lambda i: -max(len(t) for t, _, _ in items[i]))
    groups, group, acc = [], [], 0
    for i in order:
        n = sum(len(t) for t, _, _ in items[i])
        if group and acc + n > budget:
            groups.append(group)
            group, acc = [], 0
        group.append(i)
        acc += n
    return groups + ([group] if group else [])
