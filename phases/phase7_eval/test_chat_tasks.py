"""Phase 7 checkpoint: chat task rendering (multiple choice), GSM8K answer extraction, HumanEval programs."""
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


def test_render_mc_is_nanochats(chat_tasks):
    assert chat_tasks.render_mc("Q?", ["A", "B"], ["x", "y"]) == \
        "Multiple Choice question: Q?\n- x=A\n- y=B\n\nRespond only with the letter of the correct answer."

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
