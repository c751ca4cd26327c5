"""Fixtures for Phase 9's checkpoint: a tiny chat model that knows a few answers, and servers.

``chat_run`` trains (in about two seconds) a 2-layer model to reproduce a handful of
conversations rendered in Phase 0's chat format, including a calculator call and
multi-byte UTF-8 text, and saves it as a run (Phase 2's checkpoint format, with
``"stage": "sft"``), so the server and the terminal chat load it the way a user's model
is loaded. Its greedy replies to those questions are certain (large logit margins), so
tests can compare texts exactly.

``server_mod`` / ``scheduler_mod`` are the modules under test (``--impl server=PATH``,
``--impl scheduler=PATH``); ``live_server`` is a started server on a free 127.0.0.1 port.
"""
from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import impl_fixture  # the repository root conftest: registers the name for --impl

CONVERSATIONS = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("Say hello in Japanese.", "こんにちは! That is hello in Japanese. 🙂"),
    ("What is 48/2?", [{"type": "text", "text": "Half of 48 is "}, {"type": "python", "text": "48/2"},
                       {"type": "python_output", "text": "24"}, {"type": "text", "text": "24."}]),
    ("Who are you?", "I am a tiny model trained by mini-nanochat."),
    ("Name a colour.", "Blue is a colour, and so is green."),
    ("Write some HTML.", "<script>alert('x')</script> <b>bold</b>"),
    ("Count to five.", "One, two, three, four, five."),
    ("What do cats say?", "Cats say meow. Dogs say woof."),
    ("Tell me a short story.", "Once upon a time a small robot learned to talk, and it was happy."),
    ("Bonjour!", "Bonjour! Ça va? Très bien, merci."),
]
QUESTIONS = [q for q, _ in CONVERSATIONS]


def _text(answer) -> str:
    return answer if isinstance(answer, str) else "".join(p["text"] for p in answer)


def train_chat_model(steps: int = 150, seed: int = 0):
    """(model, tokenizer): a tiny GPT that has memorised ``CONVERSATIONS`` (and their second turns)."""
    from phases.phase0_tokenizer.bpe import BPETokenizer
    from phases.phase0_tokenizer.chat import render_conversation
    from phases.phase1_transformer.config import GPTConfig
    from phases.phase1_transformer.model import GPT

    texts = [q + " " + _text(a) for q, a in CONVERSATIONS] * 4
    tok = BPETokenizer.train(texts, vocab_size=420)
    convos = [[{"role": "user", "content": q}, {"role": "assistant", "content": a}] for q, a in CONVERSATIONS]
    convos += [c + d for c, d in zip(convos, convos[1:] + convos[:1])]     # two-turn chats too
    rows = [render_conversation(tok, c, max_tokens=128) for c in convos]
    T = max(len(ids) for ids, _ in rows)
    x = torch.zeros(len(rows), T, dtype=torch.long)
    y = torch.full((len(rows), T), -1, dtype=torch.long)
    for i, (ids, mask) in enumerate(rows):
        x[i, :len(ids) - 1] = torch.tensor(ids[:-1])
        y[i, :len(ids) - 1] = torch.tensor([t if m else -1 for t, m in zip(ids[1:], mask[1:])])
    cfg = GPTConfig.from_depth(2, vocab_size=tok.vocab_size, sequence_len=128, aspect_ratio=32, head_dim=32)
    model = GPT.build(cfg, seed=seed)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(steps):   # a fixture, not a training loop: full batch, constant rate
        loss = model(x, targets=y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    model.eval()
    return model, tok, opt, float(loss.detach())


@pytest.fixture(scope="session")
def chat_run(tmp_path_factory):
    """{"run": run folder, "model", "tok", "base": the base dir}: the tiny chat model saved as a run."""
    from phases.phase2_training.checkpoint import save_checkpoint

    base = tmp_path_factory.mktemp("base")
    run = base / "runs" / "sft_tiny"
    model, tok, opt, loss = train_chat_model()
    assert loss < 0.05, f"the fixture model did not learn its conversations (loss {loss:.3f})"
    tok.save(run)
    save_checkpoint(run / "checkpoints", 150, model, opt,
                    {"model_config": dataclasses.asdict(model.config), "stage": "sft",
                     "tokenizer": str(run / "tokenizer.json")})
    return {"run": run, "model": model, "tok": tok, "base": base}


server_mod = impl_fixture("server", "phases.phase9_serving.server", main=True, fixture="server_mod", doc='The server module: must define ``create_app`` and ``Settings`` (``--impl server=PATH``).')


scheduler_mod = impl_fixture("scheduler", "phases.phase9_serving.scheduler", fixture="scheduler_mod", doc='The continuous-batching scheduler (``--impl scheduler=PATH``).')


@pytest.fixture(scope="session")
def start_server(server_mod, scheduler_mod, chat_run):
    """``start_server(**settings)`` -> a running server (``.url``, ``.app``); all stop at the end."""
    from phases.phase9_serving.serve import start_in_thread

    started = []

    def start(**overrides):
        settings = server_mod.Settings(**{"model_name": "sft_tiny", "max_batch": 8, "temperature": 0.0,
                                          "scheduler_class": scheduler_mod.Scheduler, **overrides})
        app = server_mod.create_app(chat_run["model"], chat_run["tok"], settings)
        srv = start_in_thread(app)
        srv.app = app
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture(scope="session")
def live_server(start_server):
    """The default server: batch 8, greedy unless a request says otherwise."""
    return start_server()
