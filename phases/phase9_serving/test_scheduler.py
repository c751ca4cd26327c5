"""Phase 9 checkpoint: the continuous-batching scheduler, without HTTP.

Jobs go straight into ``Scheduler.submit``; their events are collected in the
scheduler's thread. Greedy texts must not depend on batching, prefix reuse or arrival
order; seeded samples must match Phase 6's ``Engine.generate_batch``.
"""
from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phases.phase0_tokenizer.chat import render_for_completion
from phases.phase6_inference.engine import Engine, SamplingParams
from phases.phase9_serving.conftest import QUESTIONS

pytestmark = pytest.mark.phase9


def prompt(tok, q: str) -> list[int]:
    return render_for_completion(tok, [{"role": "user", "content": q}, {"role": "assistant", "content": ""}])


class Collector:
    """Events of one job, gathered in the scheduler thread."""

    def __init__(self, n: int = 1):
        self.tokens = [[] for _ in range(n)]
        self.texts = [""] * n
        self.open = n
        self.error = None
        self.done = threading.Event()

    def emit(self, index, ev):
        if index is None:
            self.error = ev
            self.done.set()
            return
        self.tokens[index].append(ev.token)
        self.texts[index] += ev.text
        if ev.finished:
            self.open -= 1
            if not self.open:
                self.done.set()


def run_all(scheduler_mod, engine, prompts, params, n=1, **kw):
    s = scheduler_mod.Scheduler(engine, **kw).start()
    try:
        cols = [Collector(n) for _ in prompts]
        for p, c in zip(prompts, cols):
            s.submit(scheduler_mod.Job(p, params, c.emit, n=n))
        for c in cols:
            assert c.done.wait(60) and c.error is None
        return cols, s
    finally:
        s.stop()


def test_batching_and_prefix_reuse_do_not_change_greedy_text(scheduler_mod, chat_run):
    engine = Engine(chat_run["model"], chat_run["tok"], max_context=256)
    prompts = [prompt(chat_run["tok"], q) for q in QUESTIONS] * 2
    params = SamplingParams(max_tokens=40, temperature=0)
    alone, _ = run_all(scheduler_mod, engine, prompts, params, max_batch=1, prefix_reuse=False)
    batched, s = run_all(scheduler_mod, engine, prompts, params, max_batch=8)
    assert [c.texts for c in batched] == [c.texts for c in alone]
    reference = engine.generate_batch(prompts[:len(QUESTIONS)], max_tokens=40, temperature=0)
    assert [c.texts[0] for c in alone[:len(QUESTIONS)]] == [r.text for r in reference]


def test_n_samples_match_the_engine(scheduler_mod, chat_run):
    engine = Engine(chat_run["model"], chat_run["tok"], max_context=256)
    p = prompt(chat_run["tok"], "Tell me a short story.")
    params = SamplingParams(max_tokens=12, temperature=1.0, top_k=20, seed=11)
    (col,), _ = run_all(scheduler_mod, engine, [p], params, n=3, max_batch=4)
    want = engine.generate_batch(p, num_samples=3, max_tokens=12, temperature=1.0, top_k=20, seed=11)
    assert col.tokens == [w.tokens for w in want]


def test_queue_limit_and_cancel(scheduler_mod, chat_run):
    engine = Engine(chat_run["model"], chat_run["tok"], max_context=256)
    s = scheduler_mod.Scheduler(engine, max_batch=1, max_queue=1)      # not started: nothing drains the queue
    params = SamplingParams(max_tokens=5, temperature=0)
    p = prompt(chat_run["tok"], "Who are you?")
    first = scheduler_mod.Job(p, params, Collector().emit)
    s.submit(first)
    with pytest.raises(scheduler_mod.QueueFull):
        s.submit(scheduler_mod.Job(p, params, Collector().emit))
    with pytest.raises(ValueError):
        s.submit(scheduler_mod.Job(p, params, Collector().emit, n=2))
    s.cancel(first)
    s.start()
    c = Collector()
    s.submit(scheduler_mod.Job(p, params, c.emit))                     # the cancelled one left the queue
    assert c.done.wait(30) and c.error is None and s.running == 0
    s.stop()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 3), max_size=12), st.lists(st.integers(0, 3), max_size=12), st.integers(0, 14))
def test_common_prefix(scheduler_mod, a, b, limit):
    if not hasattr(scheduler_mod, "_common_prefix"):
        pytest.skip("this scheduler has no _common_prefix helper")
    n = 0
    while n < min(len(a), len(b), limit) and a[n] == b[n]:
        n += 1
    assert scheduler_mod._common_prefix(a, b, limit) == n
