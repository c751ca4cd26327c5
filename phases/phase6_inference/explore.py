"""Looking inside generation: each step's distribution, branches and trees over the KV cache.

The generation explorer (``tools/generation_explorer.py``) shows these; they are here because
they are generation methods built on the engine's step API, and reuse the cache the way a
search over continuations would:

- ``trace``: generate (the engine's own choose/decode loop, so the same tokens as
  ``Engine.generate`` with the same knobs and seed) and keep every step's logits, the model's
  probabilities, the probabilities under the knobs, the entropy and the top alternatives;
- ``branch``: take the RANK-th most likely token at step STEP instead and continue; the row is
  rolled back with ``KVCache.truncate``, so nothing before STEP is recomputed;
- ``tree``: the W most likely tokens at each of D steps, each leaf continued; every level is
  one batched decode, and children copy their parent's prefix (``KVCache.copy_prefix``);
- ``softcap_view``: the first step's distribution from the raw ``lm_head`` logits and after
  the ``cap * tanh(z / cap)`` softcap.

What it leaves out: beam search scoring, per-layer logit lens.

Run: ``python tools/generation_explorer.py --help``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from phases.common.console import UserError
from phases.phase1_transformer.sampling import entropy, probabilities
from phases.phase6_inference.engine import Engine, SamplingParams


def piece(tok, t: int) -> str:
    """A token as readable text: special tokens by name, bytes that are not whole UTF-8 as <0xNN>,
    control characters escaped (a token must never drive the terminal)."""
    raw = tok.token_bytes(int(t))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(f"<0x{b:02X}>" for b in raw)
    return "".join(c if c.isprintable() or c in "\n\t" else f"\\x{ord(c):02x}" for c in text)


@dataclass
class Step:
    token: int
    text: str
    p_model: float                 # probability under the model (T = 1, no filter)
    p_sample: float                # probability under the knobs it was sampled with
    entropy: float                 # nats, of the model's distribution
    alternatives: list = field(default_factory=list)   # [(token, text, p_model, p_sample)]
    logits: torch.Tensor | None = None                 # (V,) kept for --html and branching


@dataclass
class Trace:
    prompt: list[int]
    params: SamplingParams
    steps: list[Step]
    text: str
    cache: object = None           # the KV cache row that produced it (for branching)


def knobs(params: SamplingParams) -> dict:
    return dict(temperature=params.temperature, top_k=params.top_k, top_p=params.top_p)


def trace(engine: Engine, prompt: list[int], params: SamplingParams, top: int = 5) -> Trace:
    """Generate with the engine's step API, keeping each step's distribution."""
    if len(prompt) + params.max_tokens > engine.max_context:
        raise UserError(f"prompt ({len(prompt)} tokens) + --max-tokens exceed the context ({engine.max_context})")
    cache = engine.new_cache(1, len(prompt) + params.max_tokens)
    logits = engine.prefill(cache, 0, prompt)
    return _continue(engine, Trace(prompt, params, [], "", cache), engine.start(prompt, params), logits, top)


def _continue(engine: Engine, tr: Trace, gen, logits: torch.Tensor, top: int) -> Trace:
    """Choose, record, feed, until the row finishes; the text is that of every step so far."""
    while True:
        (ev,) = engine.choose([gen], logits[None])
        tr.steps.append(describe(engine, logits, ev.token, tr.params, top))
        if ev.finished:
            break
        logits = engine.decode(tr.cache, [0], [ev.token])[0]
    tr.text = engine.tokenizer.decode([s.token for s in tr.steps if s.token not in engine.stop_ids])
    return tr


def describe(engine: Engine, logits: torch.Tensor, token: int, params: SamplingParams, top: int) -> Step:
    row = logits.float()[None]                                               # (1, V)
    p_model = probabilities(row)[0]
    p_sample = probabilities(row, **knobs(params))[0]
    best = p_model.topk(min(top, p_model.numel())).indices.tolist()
    tok = engine.tokenizer
    alts = [(t, piece(tok, t), p_model[t].item(), p_sample[t].item()) for t in best]
    return Step(token, piece(tok, token), p_model[token].item(), p_sample[token].item(),
                entropy(row)[0].item(), alts, logits.detach().float().cpu())


def branch(engine: Engine, base: Trace, step: int, rank: int, top: int = 5) -> Trace:
    """Regenerate ``base`` from ``step`` on, taking the ``rank``-th most likely token there.

    The row is rolled back to the prompt + the first ``step`` tokens (``truncate``): what came
    before is not recomputed. The continuation samples with the same knobs and seed.
    """
    if not 0 <= step < len(base.steps):
        raise UserError(f"--branch step must be in 0..{len(base.steps) - 1}")
    logits = base.steps[step].logits
    if not 0 <= rank < logits.numel():
        raise UserError(f"--branch rank must be in 0..{logits.numel() - 1}")
    base.cache.truncate(0, len(base.prompt) + step)
    kept = [s.token for s in base.steps[:step]]
    gen = engine.start(base.prompt + kept, replace(base.params, max_tokens=base.params.max_tokens - step))
    gen.force([int(logits.argsort(descending=True)[rank])])
    tr = Trace(base.prompt, base.params, list(base.steps[:step]), "", base.cache)
    return _continue(engine, tr, gen, logits, top)


def tree(engine: Engine, prompt: list[int], width: int, depth: int, params: SamplingParams) -> list[dict]:
    """The ``width`` most likely tokens at each of ``depth`` steps, then every leaf continued.

    Returns the leaves: {"path": [(token, p_model)], "continuation": [tokens], "text": str}.
    Each level decodes as one batch; children copy their parent's cached prefix.
    """
    leaves = width ** depth
    if leaves > 256:
        raise UserError(f"--tree {width}x{depth} makes {leaves} leaves; keep it at most 256")
    cache = engine.new_cache(leaves, len(prompt) + depth + params.max_tokens)
    level = [([], engine.prefill(cache, 0, prompt))]              # (path, logits) per cache row
    for _ in range(depth):
        children, rows, toks = [], [], []
        for i in reversed(range(len(level))):                     # parents last-first: rows are reused
            path, logits = level[i]
            probs = logits.float().softmax(-1)
            top = probs.topk(width)
            cache.copy_prefix(i, range(i * width, i * width + width))
            for j, (p, t) in enumerate(zip(top.values.tolist(), top.indices.tolist())):
                children.append((i * width + j, path + [(t, p)]))
        children.sort()
        rows = [r for r, _ in children]
        toks = [path[-1][0] for _, path in children]
        out = engine.decode(cache, rows, toks)
        level = [(path, out[k]) for k, (_, path) in enumerate(children)]
    gens = [engine.start(prompt + [t for t, _ in path], params, sample_index=r) for r, (path, _) in enumerate(level)]
    logits = torch.stack([lg for _, lg in level])
    active = list(range(len(level)))
    while active:
        events = engine.choose([gens[r] for r in active], logits)
        keep = [k for k, ev in enumerate(events) if not ev.finished]
        if not keep:
            break
        active = [active[k] for k in keep]
        logits = engine.decode(cache, active, [events[k].token for k in keep])
    tok = engine.tokenizer
    return [{"path": path, "continuation": gens[r].tokens, "text": gens[r].text,
             "path_text": [piece(tok, t) for t, _ in path]} for r, (path, _) in enumerate(level)]


def softcap_view(engine: Engine, prompt: list[int], top: int = 8) -> dict:
    """The first step's distribution from the raw lm_head logits and after ``cap * tanh(z / cap)``."""
    model = engine.model
    cap = model.config.softcap
    seen = {}
    hook = model.lm_head.register_forward_hook(lambda m, i, o: seen.__setitem__("raw", o))
    try:
        capped = engine.prefill(engine.new_cache(1, len(prompt) + 1), 0, prompt).float()
    finally:
        hook.remove()
    raw = seen["raw"][0, -1, :model.config.vocab_size].float()
    out = {"softcap": cap}
    for name, z in (("raw", raw), ("capped", capped)):
        p = z.softmax(-1)
        best = p.topk(top)
        out[name] = {"entropy": entropy(z[None])[0].item(), "max_logit": z.max().item(), "min_logit": z.min().item(),
                     "top": [(piece(engine.tokenizer, t), v) for t, v in zip(best.indices.tolist(), best.values.tolist())]}
    return out
