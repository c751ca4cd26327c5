"""A small in-context suite built from the embedded corpus: CORE's three item types on our own text.

CORE's tasks are far beyond a model trained for minutes on docstrings: it scores at chance
on all of them, and chance tells a learner nothing. These four tasks are built from the
**validation shard** of the corpus the model trained on (documents it never saw), in the
eval bundle's item formats, so the same scorer (``core.py``) runs them:

- ``corpus_word_order`` (multiple choice): the first two words of a docstring's first
  sentence; which of four continuations is the real one? The other three are the same words
  with one pair of neighbours swapped (minimal pairs, as in BLiMP): only word order differs.
- ``corpus_which_word`` (schema): a sentence with one word replaced by each of four
  candidates (the real one and three from other docstrings); under which does the rest of
  the sentence become most likely?
- ``corpus_repeat_word`` (language modelling): a docstring up to a pair of words that already
  appeared earlier in it; greedy decoding must write the word that followed them there (the
  copying that "induction heads" learn).
- ``corpus_next_sentence`` (multiple choice, the hard one): the first sentence of a
  docstring; which of four second sentences follows it? Three come from other docstrings.
  This needs meaning, not local statistics: a minutes-old model sits at chance.

Baselines are exact: with n options and a uniformly random pick the expected accuracy is 1/n
(1/4 here); reproducing a word by guessing its tokens: 0. Items are chosen and ordered with a
fixed seed, so the suite is the same on every machine that has the same corpus.

What it leaves out: few-shot prompts (the demo's 256-token context has no room for them),
tasks about code structure (the corpus holds docstrings, not the functions they document).
"""
from __future__ import annotations

import random
import re
from pathlib import Path

from phases.phase0_tokenizer.shards import iter_texts
from phases.phase7_eval.core import ICLTask

SEED = 7
CHOICES = 4
SENTENCE_END = re.compile(r"(?<=[a-z)][.!?])\s+(?=[A-Z])")


def _clean(text: str) -> str:
    return " ".join(text.split())


def _prose(sentence: str) -> bool:
    letters = sum(c.isalpha() or c == " " for c in sentence)
    return 25 <= len(sentence) <= 200 and letters >= 0.85 * len(sentence) and ">>>" not in sentence


def first_sentences(docs: list[str]) -> list[list[str]]:
    """(first sentence, second sentence or "") of each document whose first paragraph opens with prose."""
    out = []
    for doc in docs:
        sentences = SENTENCE_END.split(_clean(doc.split("\n\n")[0]))
        if _prose(sentences[0]):
            out.append([sentences[0], sentences[1] if len(sentences) > 1 and _prose(sentences[1]) else ""])
    return out


def word_order_items(sentences: list[str], rng: random.Random) -> list[dict]:
    items = []
    for s in sentences:
        words = s.split()
        if len(words) < 8:
            continue
        rest = words[2:]
        variants = []
        for p in rng.sample(range(len(rest) - 1), CHOICES - 1):
            v = rest[:]
            v[p], v[p + 1] = v[p + 1], v[p]
            variants.append(" ".join(v))
        if len(set(variants) | {" ".join(rest)}) < CHOICES:
            continue                                    # a swap of two equal words changes nothing
        gold = rng.randrange(CHOICES)
        variants.insert(gold, " ".join(rest))
        items.append({"query": " ".join(words[:2]), "choices": variants, "gold": gold})
    return items


def which_word_items(sentences: list[str], rng: random.Random) -> list[dict]:
    split = [s.split() for s in sentences if len(s.split()) >= 8]
    vocab = sorted({w for words in split for w in words if w.isalpha() and len(w) >= 4})
    items = []
    for words in split:
        spots = [k for k in range(2, len(words) - 3) if words[k].isalpha() and len(words[k]) >= 4]
        if not spots:
            continue
        k = rng.choice(spots)
        options = rng.sample([v for v in vocab if v != words[k]], CHOICES - 1)
        gold = rng.randrange(CHOICES)
        options.insert(gold, words[k])
        items.append({"context_options": [" ".join(words[:k] + [w]) for w in options],
                      "continuation": " ".join(words[k + 1:]), "gold": gold})
    return items


def repeat_word_items(docs: list[str], max_context: int = 600) -> list[dict]:
    """Context up to a word pair seen earlier in the document; the continuation is the word that followed it."""
    items = []
    for doc in docs:
        words, seen = _clean(doc).split(" "), {}
        for i in range(len(words) - 2):
            pair, nxt = (words[i], words[i + 1]), words[i + 2]
            j = seen.get(pair)
            if j is not None and i - j > 5 and nxt.isalpha() and len(nxt) > 3 and words[j + 2] == nxt:
                items.append({"context": " ".join(words[:i + 2])[-max_context:], "continuation": nxt})
                break
            seen.setdefault(pair, i)
    return items


def next_sentence_items(pairs: list[list[str]], rng: random.Random) -> list[dict]:
    pairs = [p for p in pairs if p[1]]
    if len(pairs) < CHOICES:                     # a tiny corpus: too few second sentences to draw choices from
        return []
    items = []
    for i, (first, second) in enumerate(pairs):
        others = [pairs[j][1] for j in rng.sample([j for j in range(len(pairs)) if j != i], CHOICES - 1)]
        gold = rng.randrange(CHOICES)
        others.insert(gold, second)
        items.append({"query": first, "choices": others, "gold": gold})
    return items


def build_suite(data_dir: str | Path, max_items: int = 500) -> list[ICLTask]:
    """The four tasks from the validation shard of ``data_dir`` (an embedded-corpus-style folder)."""
    docs = list(iter_texts(data_dir, "val"))
    rng = random.Random(SEED)
    pairs = first_sentences(docs)
    firsts = [p[0] for p in pairs]
    made = {"corpus_word_order": ("multiple_choice", word_order_items(firsts, rng)),
            "corpus_which_word": ("schema", which_word_items(firsts, rng)),
            "corpus_repeat_word": ("language_modeling", repeat_word_items(docs)),
            "corpus_next_sentence": ("multiple_choice", next_sentence_items(pairs, rng))}
    source = f"embedded corpus, validation shard ({Path(data_dir).name})"
    tasks = []
    for name, (task_type, items) in made.items():
        random.Random(SEED).shuffle(items)
        baseline = 0.0 if task_type == "language_modeling" else 1 / CHOICES
        tasks.append(ICLTask(name, task_type, items[:max_items], 0, " ", baseline, source))
    return [t for t in tasks if len(t.rows) >= 2]      # a tiny corpus may not yield every task
