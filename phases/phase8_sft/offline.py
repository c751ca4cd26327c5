"""The offline chat data: conversations generated from what every install already has.

SFT needs conversations, and the CPU demo has no network. So this module writes them,
deterministically (a seeded ``random.Random``), from Python itself:

- ``arithmetic``: word problems ("Maya has 23 pencils and buys 17 more...") whose
  assistant turn calls the calculator (``23+17``), gets its output (``40``) and ends with
  ``#### 40``: something a tiny model can learn and a program can check;
- ``spelling``: letter counting with the calculator's string form ``"word".count("r")``,
  words taken from standard-library docstrings;
- ``stdlib``: "What does `json.dumps` do?" answered with the first sentence of its
  docstring, the text the model read in pretraining (the embedded corpus holds it);
- ``identity``: what the model is, what it can and cannot do, greetings and thanks;
- ``followups``: two-turn conversations (a problem, then "and if ... more?"; a greeting,
  then a question).

Every generator has a **held-out split**: an example belongs to ``test`` when a hash of
its key (the calculation of a problem, e.g. ``23+17``, the word of a spelling question, the function's name,
the wording of an identity question) falls in the held-out bucket, so train and test never
share a problem. Checkable examples carry ``"answer"`` (the text after ``####``).

What it leaves out: paraphrase by a bigger model (nanochat's identity data came from an
LLM), languages other than English.

Run: ``python -m phases.phase8_sft.offline [--out DIR]`` prints examples of each task, or
writes ``<task>_<split>.jsonl`` files for the dataset inspector and the template builder.
"""
from __future__ import annotations

import argparse
import ast
import hashlib
import json
import random
import re
import sys
import sysconfig
from functools import lru_cache
from pathlib import Path

TASKS = ("arithmetic", "spelling", "stdlib", "identity", "followups")
SPLITS = ("train", "test")
HELD_OUT = 10  # one key in HELD_OUT goes to the test split

NAMES = ("Maya", "Tom", "Ana", "Ben", "Lena", "Omar", "Sara", "Ivan", "Mia", "Leo", "Nora", "Sam",
         "Emma", "Raj", "Yuki", "Kofi", "Lucia", "Finn", "Zoe", "Hugo", "Aisha", "Max", "Ines", "Noah")
ITEMS = ("apples", "pencils", "marbles", "stickers", "cookies", "books", "coins", "shells", "cards",
         "stamps", "balloons", "candles", "buttons", "flowers", "eggs", "toys", "cups", "rocks")

ADD, SUB, MUL = "{a}+{b}", "{a}-{b}", "{a}*{b}"
DIV = "{a}/{b}"  # exact divisions only: the answer is a whole number
# (kind, question, expression). {n}: a name, {it}: items, {a} {b} {c}: the numbers.
TEMPLATES = (
    ("add", "{n} has {a} {it}. {n} buys {b} more {it}. How many {it} does {n} have now?", ADD),
    ("add", "{n} picked {a} {it} in the morning and {b} {it} in the afternoon. How many {it} did {n} pick in all?",
     ADD),
    ("add", "A shop sold {a} {it} on Monday and {b} {it} on Tuesday. How many {it} did it sell on both days?", ADD),
    ("sub", "{n} had {a} {it} and gave {b} of them to a friend. How many {it} does {n} have left?", SUB),
    ("sub", "There were {a} {it} in a box. {n} took {b} out. How many {it} are still in the box?", SUB),
    ("sub", "{n} wants {a} {it} and already has {b}. How many more {it} does {n} need?", SUB),
    ("mul", "{n} buys {a} bags with {b} {it} in each bag. How many {it} does {n} buy?", MUL),
    ("mul", "There are {a} rows of {it} with {b} {it} in each row. How many {it} are there?", MUL),
    ("mul", "Each of {a} friends brings {b} {it}. How many {it} do they bring together?", MUL),
    ("div", "{n} shares {a} {it} equally among {b} friends. How many {it} does each friend get?", DIV),
    ("div", "{a} {it} are packed into boxes of {b}. How many boxes are filled?", DIV),
    ("add_sub", "{n} has {a} {it}, buys {b} more and then gives {c} away. How many {it} does {n} have now?",
     "{a}+{b}-{c}"),
    ("mul_add", "{n} buys {a} packs of {b} {it} and already had {c} {it}. How many {it} does {n} have now?",
     "{a}*{b}+{c}"),
)
VALUE = {"add": lambda a, b, c: a + b, "sub": lambda a, b, c: a - b, "mul": lambda a, b, c: a * b,
         "div": lambda a, b, c: a // b, "add_sub": lambda a, b, c: a + b - c, "mul_add": lambda a, b, c: a * b + c}

# Modules whose public functions the stdlib questions are about (pure Python in every CPython).
STDLIB_MODULES = ("json", "textwrap", "string", "shutil", "random", "statistics", "heapq", "bisect",
                  "functools", "base64", "fnmatch", "glob", "difflib", "calendar", "copy", "html",
                  "shlex", "tempfile", "uuid", "urllib.parse", "posixpath", "gzip", "csv", "pprint",
                  "colorsys", "secrets", "fractions", "operator", "platform", "mimetypes", "inspect",
                  "os", "subprocess", "tarfile", "zipfile", "quopri", "keyword", "warnings")
SHOWN_AS = {"posixpath": "os.path"}

IDENTITY = {  # intent -> (questions, answer)
    "who": (("Who are you?", "What are you?", "What is your name?", "Introduce yourself.",
             "Tell me about yourself.", "What should I call you?"),
            "I am mini-nanochat, a very small language model trained from scratch on this computer. "
            "I can do arithmetic with my calculator, count letters and tell you what functions of "
            "the Python standard library do."),
    "can": (("What can you do?", "How can you help me?", "What are you good at?", "What kind of questions can you answer?"),
            "I can solve arithmetic word problems with my calculator tool, count the letters in a word and "
            "explain what a function of the Python standard library does. I am tiny, so please check my answers."),
    "cannot": (("Can you browse the internet?", "Do you know today's news?", "Can you look things up online?",
                "Can you remember our earlier chats?", "Can you see images?"),
               "No. I have no internet access, no memory of other conversations and no eyes: I only read the "
               "text of this conversation and answer from what I learned in training."),
    "maker": (("Who made you?", "Who trained you?", "Where do you come from?", "How were you built?"),
              "I was trained with mini-nanochat, a teaching rebuild of Andrej Karpathy's nanochat: first "
              "pretrained on Python docstrings, then fine-tuned on conversations like this one."),
    "chatgpt": (("Are you ChatGPT?", "Are you GPT-4?", "Are you a human?"),
                "No. I am mini-nanochat, a very small language model, much smaller than ChatGPT."),
    "tool": (("How do you do arithmetic?", "Do you use a calculator?", "How do you compute answers?"),
             "I write the expression for my calculator tool, it computes the result, and I give the answer."),
    "hello": (("Hi", "Hello!", "Hey there", "Good morning!", "Hello, how are you?"),
              "Hello! Ask me an arithmetic question, a letter-counting question or what a Python function does."),
    "thanks": (("Thanks!", "Thank you.", "Thanks a lot!", "Great, thank you!"), "You're welcome!"),
}


def is_held_out(key: str) -> bool:
    """Does ``key`` belong to the test split? A stable hash, the same on every machine."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % HELD_OUT == 0


def _in_split(key: str, split: str) -> bool:
    return is_held_out(key) == (split == "test")


def _assistant_tool(expr: str, output: str, answer: str) -> dict:
    return {"role": "assistant", "content": [{"type": "python", "text": expr},
                                             {"type": "python_output", "text": output},
                                             {"type": "text", "text": f"#### {answer}"}]}


def _draw_problem(rng: random.Random, kind: str) -> tuple[int, int, int]:
    if kind == "add":
        return rng.randint(2, 99), rng.randint(2, 99), 0
    if kind == "sub":
        a = rng.randint(10, 99)
        return a, rng.randint(2, a - 1), 0
    if kind == "mul":
        return rng.randint(2, 12), rng.randint(2, 30), 0
    if kind == "div":
        b, q = rng.randint(2, 12), rng.randint(2, 20)
        return b * q, b, 0
    a, b = rng.randint(2, 12), rng.randint(2, 30)
    if kind == "mul_add":
        return a, b, rng.randint(2, 99)
    a = rng.randint(10, 99)
    return a, b, rng.randint(2, a + b - 1)              # add_sub: a+b-c stays positive


def arithmetic(split: str, n: int, seed: int = 0) -> list[dict]:
    """``n`` word problems solved with one calculator call; the numbers decide the split."""
    rng, out, seen = random.Random(f"arithmetic-{split}-{seed}"), [], set()
    for _ in range(200 * n + 1000):
        if len(out) >= n:
            break
        t = rng.randrange(len(TEMPLATES))
        kind, question, expression = TEMPLATES[t]
        a, b, c = _draw_problem(rng, kind)
        expr = expression.format(a=a, b=b, c=c)
        if not _in_split(expr, split):                  # the calculation decides, not its wording
            continue
        name, items = rng.choice(NAMES), rng.choice(ITEMS)
        q = question.format(n=name, it=items, a=a, b=b, c=c)
        if q in seen:
            continue
        seen.add(q)
        answer = str(VALUE[kind](a, b, c))
        out.append({"messages": [{"role": "user", "content": q}, _assistant_tool(expr, answer, answer)],
                    "answer": answer})
    return out


@lru_cache(maxsize=1)
def stdlib_functions() -> tuple[tuple[str, str], ...]:
    """``(dotted name, docstring)`` of the public top-level functions of ``STDLIB_MODULES``.

    Read with ``ast`` from the source files (nothing is imported), sorted by name.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    found = {}
    for module in STDLIB_MODULES:
        path = root.joinpath(*module.split(".")).with_suffix(".py")
        if not path.is_file():
            path = root.joinpath(*module.split("."), "__init__.py")
        try:
            tree = ast.parse(path.read_bytes())
        except (OSError, SyntaxError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_") and node.name != "main":
                doc = ast.get_docstring(node, clean=True)
                if doc:
                    found[f"{SHOWN_AS.get(module, module)}.{node.name}"] = doc
    return tuple(sorted(found.items()))


def first_sentence(doc: str) -> str | None:
    """The docstring's first sentence, on one line; None if it is too short or too long to be an answer."""
    para = " ".join(doc.split("\n\n")[0].split())
    m = re.match(r"(.+?[.!?])(\s|$)", para)
    sentence = m.group(1) if m else para
    if not 15 <= len(sentence) <= 200 or sentence.lower().startswith(("deprecated", "this function is")):
        return None
    return sentence if sentence.endswith((".", "!", "?")) else sentence + "."


STDLIB_QUESTIONS = ("What does `{f}` do?", "What is `{f}` for?", "Explain `{f}` in one sentence.",
                    "In Python, what does {f} do?")


def stdlib(split: str, n: int, seed: int = 0) -> list[dict]:
    """Questions about standard-library functions; the function's name decides the split."""
    rng = random.Random(f"stdlib-{split}-{seed}")
    pool = [(name, s) for name, doc in stdlib_functions() if _in_split(name, split)
            for s in [first_sentence(doc)] if s]
    rng.shuffle(pool)
    out = []
    for i in range(min(n, 2 * len(pool))):         # each function asked at most twice
        name, sentence = pool[i % len(pool)]
        q = rng.choice(STDLIB_QUESTIONS).format(f=name)
        out.append({"messages": [{"role": "user", "content": q},
                                 {"role": "assistant", "content": sentence}]})
    return out


@lru_cache(maxsize=1)
def words() -> tuple[str, ...]:
    """Lower-case words of 4 to 12 letters from the docstrings of ``STDLIB_MODULES``, sorted."""
    found = set()
    for _, doc in stdlib_functions():
        found.update(w for w in re.findall(r"\b[a-z]{4,12}\b", doc))
    return tuple(sorted(found))


SPELLING_QUESTIONS = ('How many times does the letter "{l}" appear in "{w}"?', 'How many "{l}" are in the word "{w}"?',
                      "Count the letter {l} in the word {w}.", 'How many {l}s are there in "{w}"?')


def spelling(split: str, n: int, seed: int = 0) -> list[dict]:
    """Letter counting with ``"word".count("l")``; the word decides the split."""
    rng = random.Random(f"spelling-{split}-{seed}")
    pool = [w for w in words() if _in_split(w, split)]
    out = []
    for _ in range(n):
        w = rng.choice(pool)
        letter = rng.choice(w) if rng.random() < 0.85 else rng.choice("abcdefghijklmnopqrstuvwxyz")
        count = str(w.count(letter))
        q = rng.choice(SPELLING_QUESTIONS).format(l=letter, w=w)
        out.append({"messages": [{"role": "user", "content": q},
                                 _assistant_tool(f'"{w}".count("{letter}")', count, count)],
                    "answer": count})
    return out


def _identity_pool(split: str, intents=tuple(IDENTITY)) -> list[tuple[str, str]]:
    pool = []
    for intent in intents:
        questions, answer = IDENTITY[intent]
        for q in questions:
            for variant in (q, q.lower(), q.rstrip("?!.")):   # people type carelessly
                if _in_split(variant, split):
                    pool.append((variant, answer))
    return sorted(set(pool))


def _turns(question: str, answer) -> list[dict]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def identity(split: str, n: int, seed: int = 0) -> list[dict]:
    """Who the model is and what it can do, in several wordings; the wording decides the split."""
    rng, pool = random.Random(f"identity-{split}-{seed}"), _identity_pool(split)
    return [{"messages": _turns(*rng.choice(pool))} for _ in range(n)]


def followups(split: str, n: int, seed: int = 0) -> list[dict]:
    """Two-turn conversations: a problem then a follow-up on its answer, or a greeting then a problem."""
    rng = random.Random(f"followups-{split}-{seed}")
    greetings = _identity_pool(split, ("hello",))
    out = []
    for i, first in enumerate(arithmetic(split, n, seed=seed + 1)):
        m = list(first["messages"])
        if i % 2 == 0:                                  # "and if ... more?": build on the last answer
            prev, more = int(first["answer"]), rng.randint(2, 30)
            answer = str(prev + more)
            m += [{"role": "user", "content": f"And if there were {more} more?"},
                  _assistant_tool(f"{prev}+{more}", answer, answer)]
        else:                                           # a greeting first, then the problem
            m = _turns(*rng.choice(greetings)) + m
            answer = first["answer"]
        out.append({"messages": m, "answer": answer})
    return out


GENERATORS = {"arithmetic": arithmetic, "spelling": spelling, "stdlib": stdlib, "identity": identity,
              "followups": followups}


def generate(task: str, split: str = "train", n: int = 1000, seed: int = 0) -> list[dict]:
    """``n`` conversations of ``task`` from ``split`` (fewer for ``stdlib`` if it runs out of functions)."""
    if task not in GENERATORS:
        raise ValueError(f"unknown offline task {task!r}; choose from {', '.join(TASKS)}")
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    return GENERATORS[task](split, n, seed)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Show or write the offline chat data sets.")
    ap.add_argument("--out", type=Path, help="write <task>_<split>.jsonl files here")
    ap.add_argument("-n", type=int, default=1000, help="conversations per task and split (default 1000)")
    args = ap.parse_args(argv)
    for task in TASKS:
        for split in SPLITS:
            convs = generate(task, split, args.n if args.out else 2)
            if args.out:
                args.out.mkdir(parents=True, exist_ok=True)
                path = args.out / f"{task}_{split}.jsonl"
                path.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in convs), encoding="utf-8")
                print(f"{path}: {len(convs)} conversations")
            elif split == "train":
                print(f"== {task}")
                for c in convs:
                    print(json.dumps(c["messages"], ensure_ascii=False))


if __name__ == "__main__":
    from phases.common.console import run_command
    sys.exit(run_command(main))         # `... | head` ends quietly; a bad -n is one error line
