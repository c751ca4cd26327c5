"""A small in-context suite built from the embedded corpus: CORE's three item types on our own text.

CORE's tasks are far beyond a model trained for minutes on docstrings: it scores at chance
on all of them, and chance tells a learner nothing. These three tasks are built from the
**validation shard** of the corpus the model trained on (the documents it never saw), in the
same item formats, so the same scorer (``core.py``) runs them, and a small model moves them:

- ``corpus_next_sentence`` (multiple choice): the first sentence of a docstring; which of
  four second sentences follows it? Three come from other docstrings. Baseline 1/4.
- ``corpus_which_opening`` (schema): one second sentence; under which of four first
  sentences is it most likely? Baseline 1/4.
- ``corpus_last_word`` (language modelling, LAMBADA-style): a docstring up to the last word
  of a sentence, where that word already appeared earlier in the docstring; greedy decoding
  must write exactly that word. Baseline 0 (guessing a word's exact tokens).

The baselines are exact: with n options and a uniformly random pick, the expected accuracy
is 1/n. Items are chosen and ordered with a fixed seed, so the suite is the same on every
machine that has the same corpus.

What it leaves out: few-shot prompts (the demo's 256-token context has no room for them),
tasks about code structure (the corpus holds docstrings, not the functions they document).
"""
from __future__ import annotations

import random
import re
from pathlib import Path

from phases.phase0_tokenizer.corpus import iter_texts
from phases.phase7_eval.core import ICLTask

SEED = 7
CHOICES = 4
SENTENCE_END = re.compile(r"(?<=[a-z)][.!?])\s+(?=[A-Z])")
WORD_END = re.compile(r"\s([A-Za-z]{4,})([.!?])(?=\s|$)")


def _clean(text: str) -> str:
    return " ".join(text.split())


def _prose(sentence: str) -> bool:
    letters = sum(c.isalpha() or c == " " for c in sentence)
    return 25 <= len(sentence) <= 200 and letters >= 0.85 * len(sentence) and ">>>" not in sentence


def sentence_pairs(docs: list[str]) -> list[tuple[str, str]]:
    """(first sentence, second sentence) of each document whose first paragraph has both as prose."""
    pairs = []
    for doc in docs:
        sentences = SENTENCE_END.split(_clean(doc.split("\n\n")[0]))
        if len(sentences) >= 2 and _prose(sentences[0]) and _prose(sentences[1]):
            pairs.append((sentences[0], sentences[1]))
    return pairs


def last_word_items(docs: list[str], max_context: int = 600) -> list[dict]:
    """LAMBADA-style items: context up to a sentence's last word, which appeared earlier in the document."""
    items = []
    for doc in docs:
        text = _clean(doc)
        for m in reversed(list(WORD_END.finditer(text))):
            word, before = m.group(1), text[:m.start()]
            if re.search(rf"\b{re.escape(word)}\b", before) and len(before) >= 80:
                items.append({"context": before[-max_context:], "continuation": word})
                break
    return items


def build_suite(data_dir: str | Path, max_items: int = 500) -> list[ICLTask]:
    """The three tasks from the validation shard of ``data_dir`` (an embedded-corpus-style folder)."""
    docs = list(iter_texts(data_dir, "val"))
    rng = random.Random(SEED)
    pairs = sentence_pairs(docs)
    rng.shuffle(pairs)
    pairs = pairs[:max_items * CHOICES]              # distractors come from the same pool
    mc, schema = [], []
    for i, (first, second) in enumerate(pairs[:max_items]):
        others = rng.sample([j for j in range(len(pairs)) if j != i], CHOICES - 1)
        gold = rng.randrange(CHOICES)
        seconds = [pairs[j][1] for j in others]
        seconds.insert(gold, second)
        mc.append({"query": first, "choices": seconds, "gold": gold})
        firsts = [pairs[j][0] for j in others]
        firsts.insert(gold, first)
        schema.append({"context_options": firsts, "continuation": second, "gold": gold})
    lm = last_word_items(docs)
    rng.shuffle(lm)
    source = f"embedded corpus, validation shard ({Path(data_dir).name})"
    return [ICLTask("corpus_next_sentence", "multiple_choice", mc, 0, " ", 1 / CHOICES, source),
            ICLTask("corpus_which_opening", "schema", schema, 0, " ", 1 / CHOICES, source),
            ICLTask("corpus_last_word", "language_modeling", lm[:max_items], 0, " ", 0.0, source)]
