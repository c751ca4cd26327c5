"""Phase 7 checkpoint: scoring rules on logits you control, seeds, CORE arithmetic, chat scoring, pass@k, GSM8K.

The in-context tests use a byte tokenizer and a bigram "model" whose logits are a table you
set, so the right answer of every item is known before the scorer runs.
"""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.phase7


# -- tasks and mixtures ------------------------------------------------------------------------

class Numbers:
    """A task whose example i is the conversation 'i'."""

    def __new__(cls, tasks, name, n, **slice_):
        class T(tasks.Task):
            def get_example(self, index):
                return {"messages": [{"role": "user", "content": f"{name}{index}"}], "id": (name, index)}
        t = T(list(range(n)), **slice_)
        t.name = name
        return t


def test_task_slicing(tasks):
    t = Numbers(tasks, "a", 10, start=2, stop=9, step=3)
    assert len(t) == 3 and [ex["id"][1] for ex in t] == [2, 5, 8]
    assert t.num_examples() == 10
    with pytest.raises(IndexError):
        t[3]


def test_mixture_epochs_and_seeded_shuffle(tasks):
    a, b = Numbers(tasks, "a", 3), Numbers(tasks, "b", 2)
    mix = tasks.TaskMixture([a, b], epochs=[2, 1], seed=5)
    ids = [ex["id"] for ex in mix]
    assert sorted(ids) == sorted([("a", i) for i in range(3)] * 2 + [("b", 0), ("b", 1)])
    assert ids == [ex["id"] for ex in tasks.TaskMixture([a, b], epochs=[2, 1], seed=5)]    # same seed, same order
    assert ids != [ex["id"] for ex in tasks.TaskMixture([a, b], epochs=[2, 1], seed=6)]
    assert mix.counts() == {"a": 6, "b": 2} and mix.source(0) == mix[0]["id"]
    with pytest.raises(Exception, match="epochs"):
        tasks.TaskMixture([a, b], epochs=[1])


def test_seeded_order_is_numpys_permutation(tasks):
    assert tasks.seeded_order(50, 42) == np.random.default_rng(42).permutation(50).tolist()


# -- in-context items: rendering, few-shot, scoring ------------------------------------------------

def test_fewshot_draw_is_nanochats_and_never_the_item(core):
    for idx in range(20):
        shots = core.fewshot_indices(20, idx, 5)
        assert idx not in shots and len(set(shots)) == 5
        assert shots == random.Random(1234 + idx).sample([i for i in range(20) if i != idx], 5)


def test_render_matches_nanochats_templates(core):
    shot = {"query": "Q1", "choices": ["x", "y"], "gold": 1}
    assert core.render("multiple_choice", {"query": "Q", "choices": ["a", "b"]}, [shot], ": ") == \
        ["Q1: y\n\nQ: a", "Q1: y\n\nQ: b"]
    shot = {"context_options": ["c0", "c1"], "continuation": "k", "gold": 0}
    assert core.render("schema", {"context_options": ["A", "B"], "continuation": "z"}, [shot], " ") == \
        ["c0 k\n\nA z", "c0 k\n\nB z"]
    shot = {"context": " ctx ", "continuation": "done"}
    assert core.render("language_modeling", {"context": "the end of the ", "continuation": "story"}, [shot], " ") == \
        ["ctx done\n\nthe end of the", "ctx done\n\nthe end of the story"]


def test_spans_find_the_continuations(core):
    mc = core.spans("multiple_choice", [[0, 5, 6, 7], [0, 5, 6, 8, 9]], 64)
    assert [(s, e) for _, s, e in mc] == [(3, 4), (3, 5)]              # after the common prefix
    schema = core.spans("schema", [[0, 1, 7, 7], [0, 2, 2, 7, 7]], 64)
    assert [(s, e) for _, s, e in schema] == [(2, 4), (3, 5)]          # the common suffix
    lm = core.spans("language_modeling", [[0, 4, 5], [0, 4, 5, 6, 7]], 64)
    assert [(s, e) for _, s, e in lm] == [(3, 5)]
    cropped = core.spans("multiple_choice", [[0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 9]], 4)
    assert cropped[0] == ([2, 3, 4, 5], 2, 4) and cropped[1] == ([1, 2, 3, 9], 3, 4)   # last tokens kept


def _task(core, task_type, rows, delimiter=" ", shots=0, baseline=0.0):
    return core.ICLTask("t", task_type, rows, shots, delimiter, baseline)


def test_multiple_choice_picks_the_lowest_mean_loss(core, byte_tok, bigram):
    model = bigram({"q": {"b": 6.0}, "b": {"b": 6.0}})           # after q or b, b is likely
    rows = [{"query": "q", "choices": ["cc", "bb", "ab"], "gold": 1},
            {"query": "q", "choices": ["bb", "c"], "gold": 1}]    # wrong gold: scorer must say no
    r = core.evaluate_task(model, byte_tok, _task(core, "multiple_choice", rows, delimiter=""))
    assert (r.n, r.correct) == (2, 1)


def test_schema_picks_the_context_that_best_predicts_the_continuation(core, byte_tok, bigram):
    model = bigram({"x": {"k": 8.0}})
    rows = [{"context_options": ["w", "x", "y"], "continuation": "k", "gold": 1},
            {"context_options": ["x", "y"], "continuation": "k", "gold": 1}]
    r = core.evaluate_task(model, byte_tok, _task(core, "schema", rows, delimiter=""))
    assert (r.n, r.correct) == (2, 1)


def test_language_modeling_needs_every_token_greedy(core, byte_tok, bigram):
    model = bigram({"a": {"b": 5.0}, "b": {"c": 5.0}, "c": {"d": 5.0}, " ": {"z": 5.0}, "z": {"z": 5.0}})
    rows = [{"context": "a", "continuation": "bcd"},    # greedy writes b, c, d: right
            {"context": "a", "continuation": "bcx"},    # the last token differs: wrong
            {"context": "z", "continuation": "zz"}]     # greedy z, z after z: right
    r = core.evaluate_task(model, byte_tok, _task(core, "language_modeling", rows, delimiter=""))
    assert r.correct == 2


def test_impossible_shot_counts_are_capped_and_said(core, byte_tok, bigram):
    rows = [{"context": "a", "continuation": "b"} for _ in range(4)]
    r = core.evaluate_task(bigram({}), byte_tok, _task(core, "language_modeling", rows, shots=10))
    assert r.num_fewshot == 3 and "capped to 3" in r.notes[0]                      # nanochat #550 crashes


def test_centred_accuracy_and_core_arithmetic(core):
    assert core.centered(0.25, 0.25) == 0 and core.centered(1.0, 0.25) == 1
    assert core.centered(0.625, 0.5) == pytest.approx(0.25) and core.centered(0.1, 0.0) == pytest.approx(0.1)
    results = [core.TaskResult(f"t{i}", "multiple_choice", 0, 4, c, b, 0.0)
               for i, (c, b) in enumerate([(4, 0.5), (1, 0.25), (3, 0.0)])]
    name, score = core.core_score(results)
    assert name.startswith("CORE-3") and "3 of 22" in name
    assert score == pytest.approx((1.0 + 0.0 + 0.75) / 3)
    assert core.core_score(results * 7 + results[:1])[0] == "CORE"


def test_batched_equals_one_item_at_a_time(core, tiny_model):
    model, tok, _ = tiny_model
    rng = random.Random(0)
    words = "the of a function returns value list string object file name data".split()
    sentence = lambda: " ".join(rng.choice(words) for _ in range(rng.randint(3, 9)))  # noqa: E731
    mc = [{"query": sentence(), "choices": [sentence() for _ in range(4)], "gold": rng.randrange(4)} for _ in range(24)]
    lm = [{"context": sentence(), "continuation": rng.choice(words)} for _ in range(24)]
    for task_type, rows in (("multiple_choice", mc), ("language_modeling", lm)):
        task = _task(core, task_type, rows, shots=2)
        items, _ = core.prepare(task, tok, -1, model.config.sequence_len)
        seqs = [s for spans, _ in items for s in spans]
        together = core.score_sequences(model, seqs, tok.bos_token_id)
        alone = [core.score_sequences(model, [s], tok.bos_token_id)[0] for s in seqs]
        assert [g for _, g in together] == [g for _, g in alone]
        assert [loss for loss, _ in together] == pytest.approx([loss for loss, _ in alone], rel=1e-5)
        batched = core.evaluate_task(model, tok, task, batch_tokens=4096)
        single = core.evaluate_task(model, tok, task, batch_tokens=0)
        assert (batched.n, batched.correct) == (single.n, single.correct)


# -- chat scoring -------------------------------------------------------------------------------------

MC_ROWS = [{"question": f"Question {i}: which one?", "subject": "s", "choices": [f"c{i}{j}" for j in range(4)],
            "answer": i % 4} for i in range(12)]


def test_render_mc_is_nanochats(chat_tasks):
    assert chat_tasks.render_mc("Q?", ["A", "B"], ["x", "y"]) == \
        "Multiple Choice question: Q?\n- x=A\n- y=B\n\nRespond only with the letter of the correct answer."


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


@pytest.mark.parametrize("text, expected", [
    ("so 3 + 4 = 7\n#### 7", "7"), ("#### 1,234", "1234"), ("#### -5", "-5"), ("#### 3.50", "3.50"),
    ("first #### 2 then #### 3", "2"), ("no marker 42", None), ("####42", None), ("#### $18", None),
])
def test_gsm8k_answer_extraction(chat_tasks, text, expected):
    assert chat_tasks.extract_answer(text) == expected


def test_gsm8k_compares_numbers(chat_tasks):
    same = chat_tasks.same_number
    assert same("18", "18.0") and same("18.", "18") and same("1234", "1234") and same("-0.5", "-.5")
    assert not same("18", "19") and not same(None, "1") and not same("1.2.3", "123")
    task = chat_tasks.GSM8K([{"question": "q", "answer": "It is <<2*3=6>>6.\n#### 6"}])
    conv = task[0]
    assert conv["messages"][1]["content"][1] == {"type": "python", "text": "2*3"}
    assert task.evaluate(conv, "The answer is\n#### 6.0") and not task.evaluate(conv, "#### 7")


def test_humaneval_program_assembly(chat_tasks):
    row = {"task_id": "t/0", "prompt": "import math\n\ndef f(x):\n    \"\"\"sqrt\"\"\"\n",
           "canonical_solution": "    return math.sqrt(x)\n", "test": "def check(c):\n    assert c(9) == 3\n",
           "entry_point": "f"}
    task = chat_tasks.HumanEval([row], timeout_s=20)
    conv = task[0]
    good = "Here:\n```python\ndef f(x):\n    return math.sqrt(x)\n```\nDone."
    assert "import math" in task.program(conv, good) and task.program(conv, good).endswith("check(f)\n")
    assert task.evaluate(conv, good)
    assert not task.evaluate(conv, "def f(x):\n    return x\n")
