"""Fixtures for Phase 6's checkpoint: the modules under test, a tokenizer, small models.

Each module can be swapped for a learner's (``--impl``): ``--impl PATH`` or ``engine=PATH``
(the engine), ``kv_cache=PATH``, ``calculator=PATH``, ``detok=PATH``, ``session=PATH``.
"""
from __future__ import annotations

import pytest
import torch

from conftest import impl_fixture  # the repository root conftest: registers the name for --impl

TEXT = ("The cat sat on the mat. 2+2=4 and 12*7=84. Hello, world! Déjà vu, naïve café, "
        "日本語のテキスト, emoji 🙂🚀, Ελληνικά, русский текст. def f(x): return x ** 2\n") * 30


engine_mod = impl_fixture("engine", "phases.phase6_inference.engine", main=True, fixture="engine_mod")


kv_cache_mod = impl_fixture("kv_cache", "phases.phase6_inference.kv_cache", fixture="kv_cache_mod")


calculator = impl_fixture("calculator", "phases.phase6_inference.calculator")


detok = impl_fixture("detok", "phases.phase6_inference.detok")


session_mod = impl_fixture("session", "phases.phase6_inference.session", fixture="session_mod")


@pytest.fixture(scope="session")
def tok():
    """A small byte-level BPE (vocab 400) with the chat special tokens, trained on mixed scripts."""
    from phases.phase0_tokenizer.bpe import BPETokenizer
    return BPETokenizer.train([TEXT], vocab_size=400)


def make_model(tok, seed: int = 0, scale: float = 0.5, **overrides):
    """A perturbed (every path live) small GPT: depth 4, width 64, 4 query / 2 kv heads.

    ``sequence_len`` 512 with window pattern SSSL gives 128-token windows on layers 0-2, so
    a few hundred tokens exercise the sliding windows.
    """
    from phases.phase1_transformer.config import GPTConfig
    from phases.phase1_transformer.model import GPT
    kw = dict(vocab_size=tok.vocab_size, sequence_len=512, aspect_ratio=16, head_dim=16, n_kv_head=2,
              window_pattern="SSSL")
    kw.update(overrides)
    model = GPT.build(GPTConfig.from_depth(4, **kw), seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model.eval()


@pytest.fixture(scope="session")
def model(tok):
    """GQA, sliding windows (128 on three of four layers), value embeddings, smear, backout."""
    return make_model(tok)


@pytest.fixture(scope="session")
def plain_model(tok):
    """The same without value embeddings, smear, backout and residual scalars; full attention."""
    return make_model(tok, seed=3, window_pattern="L", value_embeds=False, smear=False, backout=False,
                      resid_scalars=False)


def prompt_of(tok, n: int, seed: int = 0) -> list[int]:
    """<|bos|> + n - 1 random ordinary tokens."""
    g = torch.Generator().manual_seed(seed)
    return [tok.bos_token_id] + torch.randint(0, 256 + len(tok.merges), (n - 1,), generator=g).tolist()


class Script:
    """Turns a GPT into a scripted model: the logits point at the token a rule chooses.

    ``rule`` is a dict (a bigram table: last input token -> next token; tokens without an entry
    predict ``default``) or a function ``rule(positions, tokens) -> next tokens`` over (B, T)
    tensors (the input tokens and their positions). The real forward still runs, so the KV
    cache is exercised; only its logits are replaced. Each forward's batch size goes to ``batches``.
    """

    def __init__(self, model, rule, default: int = 0):
        self.model, self.rule, self.default = model, rule, default
        self.batches: list[int] = []

    def __enter__(self):
        if isinstance(self.rule, dict):
            lookup = torch.full((self.model.config.vocab_size,), self.default, dtype=torch.long)
            for a, b in self.rule.items():
                lookup[a] = b
            rule = lambda positions, tokens: lookup[tokens]  # noqa: E731
        else:
            rule = self.rule
        real = self.model.forward

        def forward(idx, *args, kv_cache=None, **kwargs):
            start = 0 if kv_cache is None else kv_cache.get_pos()
            start = torch.as_tensor(start).reshape(-1, 1)                     # (B or 1, 1)
            logits = real(idx, *args, kv_cache=kv_cache, **kwargs)
            self.batches.append(idx.size(0))
            T = logits.size(1)
            positions = (start + torch.arange(idx.size(1)))[..., -T:].expand(idx.size(0), T)
            nxt = rule(positions, idx[:, -T:])                                # (B, T)
            return torch.full_like(logits, -20.0).scatter(-1, nxt[..., None], 20.0)

        self.model.forward = forward
        return self

    def __exit__(self, *exc):
        del self.model.forward                                                # back to the class's forward


def replay(tokens: list[int], prompt_len: int, end: int):
    """A rule that emits ``tokens`` one by one after a prompt of ``prompt_len`` tokens, then ``end``."""
    table = torch.tensor(list(tokens) + [end])

    def rule(positions, _tokens):
        return table[(positions - (prompt_len - 1)).clamp(0, len(tokens))]
    return rule


@pytest.fixture(scope="session")
def layers():
    """Phase 1's layers (the per-row mask lives there)."""
    from phases.phase1_transformer import layers as module
    return module


def make_run(root, tok, model, name: str = "tiny") -> str:
    """Save ``model`` and ``tok`` as a run folder (Phase 2's checkpoint format); return its path."""
    from pathlib import Path

    from phases.phase2_training.checkpoint import save_checkpoint
    run = Path(root) / name
    run.mkdir(parents=True, exist_ok=True)
    tok.save(run)                                               # <run>/tokenizer.json, found by load_model
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    save_checkpoint(run / "checkpoints", 1, model, opt, {"model_config": model.config.to_dict()})
    return str(run)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tok, model):
    """A run folder holding the perturbed test model and the test tokenizer."""
    return make_run(tmp_path_factory.mktemp("runs"), tok, model)
