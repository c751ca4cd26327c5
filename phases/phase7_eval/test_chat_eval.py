"""Phase 7 checkpoint: chat scoring (letters at the last position), pass@k, ChatCORE, batched generation."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.phase7


# -- chat scoring -------------------------------------------------------------------------------------

MC_ROWS = [{"question": f"Question {i}: which one?", "subject": "s", "choices": [f"c{i}{j}" for j in range(4)],
            "answer": i % 4} for i in range(12)]

def test_letter_scoring_equals_a_slow_per_choice_loop(chat_eval, chat_tasks, tiny_model):
    from phases.phase0_tokenizer.chat import render_for_completion
    model, tok, _ = tiny_model
    task = chat_tasks.MMLU(MC_ROWS)
    convs = list(task)
    fast = chat_eval.predict_letters(model, tok, convs, batch_tokens=512)
    slow = []
    for conv in convs:                    # each letter appended, one forward each: its log-probability
        prompt = render_for_completion(tok, conv)
        scores = []
        for letter in conv["letters"]:
            ids = torch.tensor([prompt + tok.encode(letter)])
            logp = torch.log_softmax(model(ids)[0, -2], -1)[ids[0, -1]]
            scores.append(logp.item())
        slow.append(conv["letters"][scores.index(max(scores))])
    assert fast == slow
    result = chat_eval.run_categorical(model, tok, task)
    assert result.correct == sum(s == c["messages"][-1]["content"] for s, c in zip(slow, convs))


def test_pass_at_k_against_hand_values(chat_eval):
    assert chat_eval.pass_at_k(5, 1, 1) == pytest.approx(0.2)
    assert chat_eval.pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)        # 1 - C(3,2)/C(5,2)
    assert chat_eval.pass_at_k(10, 0, 5) == 0.0 and chat_eval.pass_at_k(4, 3, 2) == 1.0
    for n, c, k in [(20, 7, 5), (200, 13, 10), (8, 8, 3)]:
        assert chat_eval.pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))
    with pytest.raises(ValueError):
        chat_eval.pass_at_k(3, 4, 1)


def test_chatcore_needs_all_five(chat_eval):
    R = chat_eval.ChatResult
    results = [R("ARC-Easy", "categorical", 4, 2, 0.25, 0), R("ARC-Challenge", "categorical", 4, 1, 0.25, 0),
               R("MMLU", "categorical", 4, 4, 0.25, 0), R("GSM8K", "generative", 4, 1, 0.0, 0)]
    assert chat_eval.chatcore(results) is None
    results.append(R("HumanEval", "generative", 4, 0, 0.0, 0))
    assert chat_eval.chatcore(results) == pytest.approx((1 / 3 + 0 + 1 + 0.25 + 0) / 5)

def test_batched_generation_equals_one_problem_at_a_time(chat_eval, chat_tasks, tiny_model):
    from phases.phase6_inference.engine import Engine
    model, tok, _ = tiny_model
    rows = [{"question": f"Tom has {i} apples and buys {i + 3} more. How many now?", "answer": f"#### {2 * i + 3}"}
            for i in range(6)]
    task = chat_tasks.GSM8K(rows)
    engine = Engine(model, tok)
    kw = dict(max_new_tokens=12, temperature=0.0, keep_texts=True)
    batched = chat_eval.run_generative(engine, tok, task, batch_problems=6, **kw)
    alone = chat_eval.run_generative(engine, tok, task, batch_problems=1, **kw)
    assert batched.texts == alone.texts and batched.correct == alone.correct
    sampled = chat_eval.run_generative(engine, tok, task, batch_problems=3, num_samples=3, temperature=1.0,
                                       max_new_tokens=6, keep_texts=True)
    assert all(len(t) == 3 for t in sampled.texts.values()) and set(sampled.pass_at) == {1, 3}
