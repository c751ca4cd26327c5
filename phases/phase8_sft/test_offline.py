"""Phase 8 checkpoint: the offline chat data is deterministic, valid, checkable and split cleanly."""
from __future__ import annotations

import pytest

from phases.phase6_inference.calculator import calculate

pytestmark = pytest.mark.phase8

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
def test_tool_outputs_are_what_the_calculator_answers(offline, task):
    """Training shows the model exactly what Phase 6's engine will force into its reply."""
    for split in ("train", "test"):
        for conv in offline.generate(task, split, 200):
            for parts in _tool_parts(conv):
                expr, output, final = (p["text"] for p in parts)
                assert calculate(expr) == output and final == f"#### {output}"
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
