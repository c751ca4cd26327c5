"""The inference engine: the one way every later phase generates text.

Phase 7's generative evals, Phase 8's RL rollouts and Phase 9's chat and server all call
it. It runs Phase 1's GPT over a preallocated KV cache (``kv_cache.py``): the prompt is
*prefilled* in one forward pass, then each step *decodes* one token per row, reading the
cached keys and values instead of recomputing them. Sampling is Phase 1's
``sampling.py`` (temperature, top-k, top-p), with one seeded ``torch.Generator`` per row.

High level::

    engine = Engine(model, tokenizer)
    for step in engine.generate(prompt_ids, num_samples=4, max_tokens=64, temperature=0.8, seed=1):
        step.tokens      # one entry per row: the token it got this step (None: finished earlier)
        step.masks       # 1 = sampled by the model, 0 = forced (calculator output)
        step.texts       # the newly complete text of each row (UTF-8 safe, stop strings held back)
        step.finished    # whether each row is done (now or earlier)
    results = engine.generate_batch([ids_a, ids_b], max_tokens=64, temperature=0)   # list[Completion]

``prompts`` is one token list (run ``num_samples`` times: one prefill, copied to the sample
rows) or a list of token lists of any lengths (row ``p * num_samples + s`` is sample ``s`` of
prompt ``p``). A row stops on ``<|assistant_end|>`` or ``<|bos|>`` (sampled, not forced), on a
stop string, or after ``max_tokens`` tokens. Finished rows leave the batch: the last active
row moves into the freed cache row, so the decode batch shrinks and stays a plain slice.

Determinism: row ``s`` of a prompt samples from a generator seeded with
``row_seed(seed, s)`` (``row_seed(seed, 0) == seed``, the seed of Phase 1's naive
``GPT.generate``), so the same seed gives the same tokens, and a row gets the same tokens
in a batch as alone (up to float rounding of batched matmuls; ADR.md).

Tool use: when a row writes ``<|python_start|> expr <|python_end|>``, the calculator
(``calculator.py``) evaluates ``expr``; if it gives a result, ``<|output_start|> result
<|output_end|>`` is forced into the row, with mask 0.

Log-probabilities (``logprobs=True``): for every token, its log-probability under the
model's own distribution (softmax of the logits, temperature 1, no top-k/top-p), forced
tokens included; RL and the API's ``logprobs`` use this one.

Low level, for a scheduler (Phase 9's continuous batching): a live cache whose rows come
and go, each row at its own position::

    cache = engine.new_cache(batch=8, max_len=1024)
    live = {}                                              # row -> Generation
    # admit a request into a free row, while other rows are mid-generation
    row = 3
    logits = engine.prefill(cache, row, prompt_ids)        # (V,): the prompt's last position
    live[row] = engine.start(prompt_ids, SamplingParams(max_tokens=100, temperature=0.7, seed=5))
    pending = {row: engine.choose([live[row]], logits[None])[0]}   # its first token (a TokenEvent)
    # one decode step for any subset of active rows, each at its own position
    rows = [r for r, ev in pending.items() if not ev.finished]
    logits = engine.decode(cache, rows, [pending[r].token for r in rows])       # (len(rows), V)
    pending = dict(zip(rows, engine.choose([live[r] for r in rows], logits)))  # sample/force, stops
    # a finished row is released for reuse
    engine.release(cache, row)

``choose`` samples every row in one call (per-row knobs and generators), applies forced tool
tokens, stop tokens, stop strings and ``max_tokens``, and returns one ``TokenEvent`` per row.

What it leaves out: paged KV memory, prefix caching across requests (Session reuses one
conversation's cache), speculative decoding, beam search, CUDA graphs.

Run: ``python -m phases.phase6_inference.engine`` generates from a fresh tiny model and checks
the cached tokens against Phase 1's naive generate.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import torch

from phases.phase1_transformer.sampling import sample_next
from phases.phase6_inference.kv_cache import KVCache, check_fits
# One row's state lives in row_state.py; its types are imported with the Engine by every caller.
from phases.phase6_inference.row_state import (Completion, Generation, SamplingParams, Step,  # noqa: F401
                                               TokenEvent, row_seed)

STOP_TOKENS = ("<|assistant_end|>", "<|bos|>")


# --8<-- [start:layout]
def decode_layout(model: torch.nn.Module) -> int:
    """Store each wide Linear weight column-major (same values and shape); return how many moved.

    A decode step multiplies one row per sequence by each weight matrix W (out, in). CPU BLAS
    computes ``F.linear(x, W)`` either as ``out`` dot products of length ``in`` (W row-major,
    PyTorch's default) or by streaming ``W.T`` (W column-major). Measured single-threaded on
    this project's CPU: for a wide matrix (out >> in) streaming is much faster (the d6 model's
    lm_head, 32768 x 384: 5.3 -> 2.6 ms; its MLP c_fc, 1536 x 384: 242 -> 140 us), for a tall
    one (in >> out) the dot products are (c_proj, 384 x 1536: 179 vs 265 us), square ones
    are even. So wide weights (out >= 2 in) move. Training steps take the same time with
    either layout (measured), and checkpoints save a contiguous copy.
    """
    moved = 0
    with torch.no_grad():
        for module in model.modules():
            w = getattr(module, "weight", None)
            if (isinstance(module, torch.nn.Linear) and w is not None and w.size(0) >= 2 * w.size(1)
                    and not w.t().is_contiguous()):
                w.data = w.data.t().contiguous().t()                 # an (out, in) view of an (in, out) array
                moved += 1
    return moved
# --8<-- [end:layout]


class Engine:
    """Generate with a KV cache: batched, seeded, with tools, stop strings and log-probs."""

    def __init__(self, model, tokenizer, *, max_context: int | None = None,
                 stop_tokens: Sequence[str] = STOP_TOKENS, compile: bool = False):
        """``max_context``: the longest row (default: the model's rotary table, 10 x sequence_len);
        ``stop_tokens``: special tokens that end a row when sampled; ``compile``: run decode steps
        that cover every row of a CPU cache through ``torch.compile`` over ``KVCache.static_view``
        (one graph per cache shape; see ADR.md for what it gives). On a CPU the model's Linear
        weights that are wide are stored column-major (``decode_layout``: same values, faster decoding)."""
        self.model, self.tokenizer = model.eval(), tokenizer
        if model.wte.weight.device.type == "cpu":
            decode_layout(model)
        self.compile = compile
        self._compiled = None
        self.device = model.wte.weight.device
        self.max_context = max_context or model.cos.size(0)
        sp = tokenizer.encode_special
        self.stop_ids = frozenset(sp(name) for name in stop_tokens)
        self.python_start, self.python_end = sp("<|python_start|>"), sp("<|python_end|>")
        self.output_start, self.output_end = sp("<|output_start|>"), sp("<|output_end|>")

    # -- low level: a live cache, rows at their own positions ---------------------------------
    def new_cache(self, batch: int, max_len: int | None = None) -> KVCache:
        """A cache of ``batch`` rows of up to ``max_len`` tokens (default: the engine's max context)."""
        return KVCache.for_model(self.model, batch, min(max_len or self.max_context, self.max_context))

    # --8<-- [start:prefill_decode]
    @torch.inference_mode()
    def prefill(self, cache: KVCache, row: int, tokens: Sequence[int]) -> torch.Tensor:
        """Run ``tokens`` into ``row`` after what it holds; return the last position's logits (V,)."""
        if not tokens:
            raise ValueError("prefill needs at least one token")
        ids = torch.tensor([list(tokens)], dtype=torch.long, device=self.device)   # (1, T)
        return self.model(ids, kv_cache=cache.view([row]), last_only=True)[0, -1]  # (V,)

    @torch.inference_mode()
    def decode(self, cache: KVCache, rows: Sequence[int], tokens: Sequence[int]) -> torch.Tensor:
        """Feed one token to each of ``rows`` (each at its own position); logits (len(rows), V)."""
        ids = torch.tensor(list(tokens), dtype=torch.long, device=self.device)[:, None]  # (B, 1)
        rows = list(rows)
        if self.compile and rows == list(range(cache.batch)) and cache.device.type == "cpu":
            return self._decode_static(cache, ids)
        return self.model(ids, kv_cache=cache.view(rows))[:, -1]                     # (B, V)
    # --8<-- [end:prefill_decode]

    def _decode_static(self, cache: KVCache, ids: torch.Tensor) -> torch.Tensor:
        """One decode step of every row over the full cache length, through torch.compile."""
        if int(cache.pos.max()) >= cache.max_len:
            raise ValueError(f"the KV cache holds {cache.max_len} tokens per row; a row is full")
        if self._compiled is None:
            model = self.model

            def step(ids, view):
                return model(ids, kv_cache=view)[:, -1]
            self._compiled = torch.compile(step, dynamic=False)
        return self._compiled(ids, cache.static_view())

    def release(self, cache: KVCache, row: int) -> None:
        """Free ``row`` for the next request."""
        cache.reset([row])

    def start(self, prompt: Sequence[int], params: SamplingParams, sample_index: int = 0) -> Generation:
        """The state of a new row that will generate after ``prompt`` with ``params``."""
        return Generation(self, prompt, params, sample_index)

    @torch.inference_mode()
    def choose(self, gens: Sequence[Generation], logits: torch.Tensor,
               room: Sequence[bool] | None = None) -> list[TokenEvent]:
        """The next token of every row: forced if a tool output is queued, else sampled.

        ``logits`` (B, V) are each row's last logits; ``room[i]`` False says row i's cache is
        full (it ends with "length"). Returns one ``TokenEvent`` per row.
        """
        B = len(gens)
        forced = [g.next_forced() for g in gens]
        tokens = [f if f is not None else 0 for f in forced]
        free = [i for i, f in enumerate(forced) if f is None]
        if free:
            sub = logits if len(free) == B else logits[free]
            ps = [gens[i].params for i in free]
            drawn = sample_next(sub, _knob([p.temperature for p in ps]), _knob([p.top_k or 0 for p in ps]),
                                _knob([p.top_p or 1.0 for p in ps]), generator=[gens[i].generator for i in free])
            for i, t in zip(free, drawn.tolist()):
                tokens[i] = t
        lp: list[float | None] = [None] * B
        want = [i for i, g in enumerate(gens) if g.params.logprobs]
        if want:
            chosen = torch.tensor([tokens[i] for i in want], device=logits.device)
            picked = logits[want].float().log_softmax(-1).gather(1, chosen[:, None])[:, 0]
            for i, v in zip(want, picked.tolist()):
                lp[i] = v
        room = room if room is not None else [True] * B
        return [g.accept(t, int(f is None), l, r) for g, t, f, l, r in zip(gens, tokens, forced, lp, room)]

    # -- high level -----------------------------------------------------------------------------
    def generate(self, prompts: Sequence[int] | Sequence[Sequence[int]], *, num_samples: int = 1,
                 max_tokens: int = 256, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, seed: int | Sequence[int] | None = 42, stop: Sequence[str] = (),
                 logprobs: bool = False, use_tools: bool = True, first_sample: int = 0) -> Iterator[Step]:
        """Stream the generation of every row, one ``Step`` per decoding step (see the module doc).

        ``seed`` may be one int, or one per prompt. ``first_sample`` numbers the samples from
        there (each sample's generator is seeded by its number), so samples 0-99 in one batch
        equal samples 0-49 and 50-99 in two.
        """
        batch = _as_batch(prompts)
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        seeds = list(seed) if isinstance(seed, (list, tuple)) else [seed] * len(batch)
        if len(seeds) != len(batch):
            raise ValueError(f"{len(seeds)} seeds for {len(batch)} prompts")
        longest = max(len(p) for p in batch)
        if longest >= self.max_context:
            raise ValueError(f"a prompt of {longest} tokens leaves no room in a context of {self.max_context}")
        rows = len(batch) * num_samples
        if max_tokens > 0:                   # refuse a cache that cannot fit before building 100,000 row states
            check_fits(rows, min(longest + max_tokens, self.max_context), self.model.kv_bytes_per_token(), self.device)
        gens = [self.start(batch[p], SamplingParams(max_tokens, temperature, top_k, top_p, seeds[p], tuple(stop),
                                                    logprobs, use_tools), first_sample + s)
                for p in range(len(batch)) for s in range(num_samples)]
        if max_tokens == 0:
            return
        # --8<-- [start:loop]
        cache = self.new_cache(rows, min(longest + max_tokens, self.max_context))
        logits = self._prefill_all(cache, batch, num_samples)          # (rows, V)
        slot_of = list(range(rows))    # request row -> cache row
        active = list(range(rows))     # request rows still generating, in cache-row order
        while active:
            pos = cache.pos.tolist()
            room = [pos[slot_of[r]] < cache.max_len for r in active]
            events = self.choose([gens[r] for r in active], logits, room)
            yield _step(rows, active, events)
            keep = [i for i, ev in enumerate(events) if not ev.finished]
            if not keep:
                return
            active, fed, logits = [active[i] for i in keep], [events[i].token for i in keep], logits[keep]
            if self.compile:  # one static graph: every row keeps decoding, finished ones are ignored
                keep_rows = [slot_of[r] for r in active]
                step_tokens = [0] * cache.batch
                for r, t in zip(active, fed):
                    step_tokens[slot_of[r]] = t
                logits = self.decode(cache, range(cache.batch), step_tokens)[keep_rows]
                continue
            order = self._compact(cache, active, slot_of)
            active, fed, logits = [active[j] for j in order], [fed[j] for j in order], logits[order]
            logits = self.decode(cache, range(len(active)), fed)
        # --8<-- [end:loop]

    @staticmethod
    def _compact(cache: KVCache, active: list[int], slot_of: list[int]) -> list[int]:
        """Move rows so the active ones fill cache rows 0..n-1 (one row copy per finished row).

        Returns the order of ``active`` by cache row.
        """
        n = len(active)
        occupied = {slot_of[r] for r in active}
        holes = [s for s in range(n) if s not in occupied]
        movers = [r for r in active if slot_of[r] >= n]
        for hole, r in zip(holes, movers):
            cache.copy_prefix(slot_of[r], hole)
            slot_of[r] = hole
        return sorted(range(n), key=lambda j: slot_of[active[j]])

    def generate_batch(self, prompts: Sequence[int] | Sequence[Sequence[int]], *, num_samples: int = 1,
                       **kwargs) -> list[Completion]:
        """Run ``generate`` to the end; one ``Completion`` per row (prompt-major order)."""
        batch = _as_batch(prompts)
        steps = list(self.generate(prompts, num_samples=num_samples, **kwargs))
        out = []
        for r in range(len(batch) * num_samples):
            toks = [s.tokens[r] for s in steps if s.tokens[r] is not None]
            masks = [s.masks[r] for s in steps if s.tokens[r] is not None]
            lps = [s.logprobs[r] for s in steps if s.tokens[r] is not None] if kwargs.get("logprobs") else None
            text = "".join(s.texts[r] for s in steps)
            reason = next((s.finish_reasons[r] for s in steps if s.finish_reasons[r]), "length")
            out.append(Completion(toks, masks, text, reason, lps, r // num_samples,
                                  kwargs.get("first_sample", 0) + r % num_samples))
        return out

    def _prefill_all(self, cache: KVCache, batch: list[list[int]], num_samples: int) -> torch.Tensor:
        """Prefill each distinct prompt once and copy it to its sample rows; logits (rows, V)."""
        logits = []
        for p, prompt in enumerate(batch):
            first = p * num_samples
            last = self.prefill(cache, first, prompt)                    # (V,)
            cache.copy_prefix(first, range(first + 1, first + num_samples))
            logits.append(last.expand(num_samples, -1))
        return torch.cat(logits)                                         # (rows, V)


def _knob(values: list):
    """One value for every row when they agree (the sampler's fast path), else a per-row tensor."""
    return values[0] if all(v == values[0] for v in values) else torch.tensor(values)


def _as_batch(prompts) -> list[list[int]]:
    """One prompt (a list of ints) or several (a list of lists) -> a list of token lists."""
    if not prompts:
        raise ValueError("no prompt given")
    several = not isinstance(prompts[0], int) and not (torch.is_tensor(prompts[0]) and prompts[0].ndim == 0)
    batch = [[int(t) for t in p] for p in prompts] if several else [[int(t) for t in prompts]]
    if any(not p for p in batch):
        raise ValueError("every prompt needs at least one token (e.g. <|bos|>)")
    return batch


def _step(rows: int, active: list[int], events: list[TokenEvent]) -> Step:
    step = Step([None] * rows, [0] * rows, [None] * rows, [""] * rows, [True] * rows, [None] * rows)
    for r, ev in zip(active, events):
        step.tokens[r], step.masks[r], step.logprobs[r], step.texts[r] = ev.token, ev.mask, ev.logprob, ev.text
        step.finished[r], step.finish_reasons[r] = ev.finished, ev.finish_reason
    return step


if __name__ == "__main__":
    # A fresh tiny model (random weights) and a byte-level tokenizer trained on a few sentences:
    # four sampled rows through the cache must equal Phase 1's naive, uncached generate.
    from phases.phase0_tokenizer.bpe import BPETokenizer
    from phases.phase1_transformer.config import GPTConfig
    from phases.phase1_transformer.model import GPT

    tok = BPETokenizer.train(["The cache stores keys and values, so each step runs one token. "] * 20,
                             vocab_size=300)
    model = GPT.build(GPTConfig.from_depth(2, vocab_size=tok.vocab_size, sequence_len=128), seed=0).eval()
    prompt = tok.encode("The cache", prepend=tok.bos_token_id)
    engine = Engine(model, tok)
    done = engine.generate_batch(prompt, num_samples=4, max_tokens=24, temperature=1.0, seed=7)
    for s, c in enumerate(done):
        naive = list(model.generate(prompt, max_tokens=len(c.tokens), temperature=1.0, seed=row_seed(7, s)))
        print(f"sample {s}: {len(c.tokens)} tokens, cached == naive: {naive == c.tokens}")
        if naive != c.tokens:
            raise SystemExit("cached and naive generation differ")
