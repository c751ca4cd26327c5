"""Phase 7 checkpoint: CORE-style in-context scoring on logits you control, seeds, CORE arithmetic.

The in-context tests use a byte tokenizer and a bigram "model" whose logits are a table you
set, so the right answer of every item is known before the scorer runs.
"""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.phase7


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


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.integers(0, 2), max_size=8), min_size=1, max_size=4), st.booleans())
def test_common_length_is_the_longest_shared_prefix_or_suffix(core, seqs, from_end):
    n = core.common_length(seqs, from_end=from_end)
    ends = [s[::-1] if from_end else s for s in seqs]
    assert all(e[:n] == ends[0][:n] for e in ends)                     # shared ...
    assert n == min(map(len, ends)) or len({tuple(e[:n + 1]) for e in ends}) > 1   # ... and no longer


def _task(core, task_type, rows, delimiter=" ", shots=0, baseline=0.0):
    return core.ICLTask("t", task_type, rows, shots, delimiter, baseline)


def test_multiple_choice_picks_the_lowest_mean_loss(core, byte_tok, bigram):
    model = bigram({"q": {"b": 6.0}, "b": {"b": 6.0}})           # after q or b, b is likely
    rows = [{"query": "q", "choices": ["cc", "bb", "ab"], "gold": 1},
            {"query": "q", "choices": ["bb", "c"], "gold": 1}]    # wrong gold: scorer must say no
    r = core.evaluate_task(model, byte_tok, _task(core, "multiple_choice", rows, delimiter=""), batch_tokens=0)
    assert (r.n, r.correct) == (2, 1)


def test_schema_picks_the_context_that_best_predicts_the_continuation(core, byte_tok, bigram):
    model = bigram({"x": {"k": 8.0}})
    rows = [{"context_options": ["w", "x", "y"], "continuation": "k", "gold": 1},
            {"context_options": ["x", "y"], "continuation": "k", "gold": 1}]
    r = core.evaluate_task(model, byte_tok, _task(core, "schema", rows, delimiter=""), batch_tokens=0)
    assert (r.n, r.correct) == (2, 1)


def test_language_modeling_needs_every_token_greedy(core, byte_tok, bigram):
    model = bigram({"a": {"b": 5.0}, "b": {"c": 5.0}, "c": {"d": 5.0}, " ": {"z": 5.0}, "z": {"z": 5.0}})
    rows = [{"context": "a", "continuation": "bcd"},    # greedy writes b, c, d: right
            {"context": "a", "continuation": "bcx"},    # the last token differs: wrong
            {"context": "z", "continuation": "zz"}]     # greedy z, z after z: right
    r = core.evaluate_task(model, byte_tok, _task(core, "language_modeling", rows, delimiter=""), batch_tokens=0)
    assert r.correct == 2


def test_impossible_shot_counts_are_capped_and_said(core, byte_tok, bigram):
    rows = [{"context": "a", "continuation": "b"} for _ in range(4)]
    r = core.evaluate_task(bigram({}), byte_tok, _task(core, "language_modeling", rows, shots=10), batch_tokens=0)
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


def test_rows_are_grouped_by_length_with_little_padding(monkeypatch):
    from phases.phase7_eval import scoring
    lengths = [3, 40, 31, 29, 12, 10, 9, 2, 40, 1]
    monkeypatch.setattr(scoring, "MIN_TOKENS", 0)
    groups = scoring.by_length(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))      # every row once
    assert [[lengths[i] for i in g] for g in groups] == [[40, 40, 31], [29], [12, 10, 9], [3], [2], [1]]
    monkeypatch.setattr(scoring, "MIN_TOKENS", 100)                                # short rows share a forward
    assert [[lengths[i] for i in g] for g in scoring.by_length(lengths)] == [[40, 40, 31], [29, 12, 10, 9], [3, 2, 1]]
    capped = scoring.by_length(lengths, max_tokens=80)                             # no forward over 80 padded tokens
    assert [[lengths[i] for i in g] for g in capped] == [[40, 40], [31, 29], [12, 10, 9, 3, 2, 1]]


def test_a_batch_of_items_holds_forwards_per_batch_forwards(monkeypatch):
    from phases.phase7_eval import scoring
    monkeypatch.setattr(scoring, "FORWARDS_PER_BATCH", 2)
    items = [[([1] * n, 1, n)] * 4 for n in (50, 10, 30, 20, 40)]                 # 4 sequences of n tokens
    assert scoring.batches(items, batch_tokens=200) == [[0, 4], [2, 3, 1]]         # longest first, <= 2 x 200 tokens
    assert scoring.batches(items, batch_tokens=10 ** 6) == [[0, 4, 2, 3, 1]]
    assert scoring.batches(items, batch_tokens=1) == [[0], [4], [2], [3], [1]]     # an item never splits


@pytest.mark.parametrize("min_tokens, min_stem", [(512, 8), (0, 1)])   # 0: many length groups; 1: every stem cached
def test_batched_equals_one_item_at_a_time(core, tiny_model, monkeypatch, min_tokens, min_stem):
    from phases.phase7_eval import scoring
    monkeypatch.setattr(scoring, "MIN_TOKENS", min_tokens)
    monkeypatch.setattr(scoring, "MIN_STEM", min_stem)
    model, tok, _ = tiny_model
    rng = random.Random(0)
    words = "the of a function returns value list string object file name data".split()
    sentence = lambda: " ".join(rng.choice(words) for _ in range(rng.randint(3, 9)))  # noqa: E731
    mc = [{"query": sentence(), "choices": [sentence() for _ in range(4)], "gold": rng.randrange(4)} for _ in range(24)]
    lm = [{"context": sentence(), "continuation": rng.choice(words)} for _ in range(24)]
    schema = []
    for _ in range(24):   # contexts that agree up to the blank: a stem inside each item
        before = sentence()
        schema.append({"context_options": [f"{before} {sentence()}" for _ in range(3)],
                       "continuation": sentence(), "gold": rng.randrange(3)})
    for task_type, rows, shots in (("multiple_choice", mc, 2), ("language_modeling", lm, 2), ("schema", schema, 0)):
        task = _task(core, task_type, rows, shots=shots)     # schema 0-shot: within the model's 64 tokens
        items, _ = core.prepare(task, tok, -1, model.config.sequence_len)
        seqs = [s for spans, _ in items for s in spans]
        together = core.score_sequences(model, seqs, tok.bos_token_id)            # padded, one forward
        shared = [r for rs in scoring.score_items(model, [spans for spans, _ in items], tok.bos_token_id)
                  for r in rs]                                                  # stems once, via the cache
        alone = [core.score_sequences(model, [s], tok.bos_token_id)[0] for s in seqs]
        for fast in (together, shared):
            assert [g for _, g in fast] == [g for _, g in alone]
            assert [loss for loss, _ in fast] == pytest.approx([loss for loss, _ in alone], rel=1e-5)
        batched = core.evaluate_task(model, tok, task, batch_tokens=4096)
        single = core.evaluate_task(model, tok, task, batch_tokens=0)
        assert (batched.n, batched.correct) == (single.n, single.correct)
    assert sum(scoring.stem(spans) >= 3 for spans, _ in items) > len(items) / 2    # most schema items had stems


def test_batched_sharing_cases_score_as_one_sequence_at_a_time(core, tiny_model):
    """Hand-built items for each path of ``score_items``: an item-wide stem; choices cut to the
    model's length where two of equal length share their whole prefix (the continuation starts
    right after the stem); a choice with no tokens of its own; an item with no stem at all."""
    from phases.phase7_eval import scoring
    model, tok, _ = tiny_model
    g = torch.Generator().manual_seed(3)
    draw = lambda n: torch.randint(1, model.config.vocab_size, (n,), generator=g).tolist()  # noqa: E731
    context, tail = draw(20), draw(6)
    stem_item = [(context + c, 20, 20 + len(c)) for c in (draw(5), draw(3), tail, tail[:4])]
    shared = draw(12)                         # two equal-length choices after one cut prefix
    cut_item = [(shared + [7, 8], 12, 14), (shared + [9, 10], 12, 14), (draw(13) + [4], 13, 14)]
    empty_item = [(context + tail, 26, 26), (context + tail + [5], 26, 27)]
    loose_item = [(draw(9), 4, 9), (draw(11), 6, 11)]
    items = [stem_item, cut_item, empty_item, loose_item]
    assert [scoring.stems(i) for i in items] == [[20] * 4, [12, 12, 0], [26, 26], [0, 0]]
    got = scoring.score_items(model, items, tok.bos_token_id)
    no_argmax = scoring.score_items(model, items, tok.bos_token_id, greedy=False)   # losses only (not LM items)
    pool = scoring.CachePool()                    # a reused cache still holds other items' keys: the same bits
    scoring.score_items(model, items + [[(t[::-1], s, e) for t, s, e in item] for item in items], tok.bos_token_id,
                        pool=pool)
    used = pool.cache
    again = scoring.score_items(model, items, tok.bos_token_id, pool=pool)
    assert pool.cache is used and str(again) == str(got)        # reused, and the same (str: nan == nan)
    assert [h for r in no_argmax for _, h in r] == [None] * sum(map(len, items))
    assert [x for r in no_argmax for x, _ in r] == pytest.approx([x for r in got for x, _ in r], rel=0, nan_ok=True)
    for item, results in zip(items, got):
        for seq, (loss, greedy) in zip(item, results):
            if seq[1] == seq[2]:              # nothing to score: no loss, never the winner
                assert math.isnan(loss) and greedy
                continue
            ref_loss, ref_greedy = core.score_sequences(model, [seq], tok.bos_token_id)[0]
            assert loss == pytest.approx(ref_loss, rel=1e-5) and greedy == ref_greedy


def test_a_choice_that_is_a_prefix_of_another_never_wins(core, byte_tok, bigram, tiny_model):
    rows = [{"query": "q", "choices": ["ab", "abc"], "gold": 1}, {"query": "q", "choices": ["ab", "abc"], "gold": 0}]
    slow = core.evaluate_task(bigram({}), byte_tok, _task(core, "multiple_choice", rows, delimiter=""), batch_tokens=0)
    model, tok, _ = tiny_model
    fast = core.evaluate_task(model, tok, _task(core, "multiple_choice", rows, delimiter=""))
    assert slow.correct == fast.correct == 1          # "ab" has no tokens of its own: "abc" is chosen


def test_next_sentence_items_of_a_tiny_corpus_are_none_not_a_crash():
    """A validation shard with fewer second sentences than choices gives no items (the task is
    dropped), not a ValueError from random.sample (found by the pipeline's tiny-world test)."""
    import random

    from phases.phase7_eval.corpus_suite import CHOICES, next_sentence_items
    assert next_sentence_items([["a.", "b."], ["c.", "d."]], random.Random(0)) == []
    items = next_sentence_items([[f"s{i}.", f"t{i}."] for i in range(6)], random.Random(0))
    assert len(items) == 6
    assert all(len(x["choices"]) == CHOICES and x["choices"][x["gold"]] == f"t{i}." for i, x in enumerate(items))
