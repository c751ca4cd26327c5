"""Phase 8 checkpoint: the offline chat data is deterministic, valid, checkable and split cleanly."""
from __future__ import annotations

import ast
import operator

import pytest

pytestmark = pytest.mark.phase8

OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _arith(node):
    """Evaluate the data's + - * / expressions by walking the tree (no eval)."""
    if isinstance(node, ast.Expression):
        return _arith(node.body)
    if isinstance(node, ast.BinOp):
        return OPS[type(node.op)](_arith(node.left), _arith(node.right))
    assert isinstance(node, ast.Constant) and isinstance(node.value, int)
    return node.value


def _tool_parts(conv):
    return [m["content"] for m in conv["messages"] if m["role"] == "assistant" and isinstance(m["content"], list)]


@pytest.mark.parametrize("task", ["arithmetic", "spelling", "stdlib", "identity", "followups"])
def test_deterministic_valid_and_split(offline, conversations, task):
    train, test = offline.generate(task, "train", 300), offline.generate(task, "test", 60)
    assert train == offline.generate(task, "train", 300)            # same call, same data
    assert train and test
    for conv in train + test:
        conversations.check_conversation(conv)                     # what the SFT loader accepts
    first_user = {c["messages"][0]["content"] for c in test}
    if task in ("arithmetic", "stdlib", "spelling"):                # checkable tasks: no test question in train
        assert not first_user & {c["messages"][0]["content"] for c in train}


def test_split_is_by_problem_not_by_wording(offline):
    keys = {}
    for split in ("train", "test"):
        for conv in offline.generate("arithmetic", split, 400):
            keys.setdefault(conv["messages"][1]["content"][0]["text"], set()).add(split)
    assert all(len(s) == 1 for s in keys.values())                 # an expression lives in one split


@pytest.mark.parametrize("task", ["arithmetic", "spelling", "followups"])
def test_tool_outputs_and_answers_are_right(offline, task):
    for conv in offline.generate(task, "train", 200):
        for parts in _tool_parts(conv):
            expr, output, final = (p["text"] for p in parts)
            if ".count(" in expr:
                word, letter = ast.literal_eval(expr.split(".count(")[0]), ast.literal_eval(expr.split(".count(")[1][:-1])
                value = word.count(letter)
            else:
                value = _arith(ast.parse(expr, mode="eval"))
            assert value == int(value) and output == str(int(value))
            assert final == f"#### {output}"
        assert conv["answer"] == _tool_parts(conv)[-1][1]["text"]


def test_first_sentence(offline):
    assert offline.first_sentence("Return the sum.\n\nMore text.") == "Return the sum."
    assert offline.first_sentence("Split the string at\nwhitespace. Then more.") == "Split the string at whitespace."
    assert offline.first_sentence("Short.") is None


def test_unknown_task_or_split(offline):
    with pytest.raises(ValueError, match="unknown offline task"):
        offline.generate("poetry")
    with pytest.raises(ValueError, match="split"):
        offline.generate("arithmetic", "dev")
