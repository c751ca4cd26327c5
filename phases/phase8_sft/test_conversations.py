"""Phase 8 checkpoint: conversation JSONL in both forms, with line-numbered errors."""
from __future__ import annotations

import json

import pytest

from phases.common.console import UserError

pytestmark = pytest.mark.phase8

GOOD = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]


def test_both_forms_read_the_same(conversations, tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text(json.dumps(GOOD) + "\n\n" + json.dumps({"messages": GOOD, "answer": "x"}) + "\n")
    a, b = conversations.read_conversations(f)
    assert a["messages"] == b["messages"] == GOOD and b["answer"] == "x"


@pytest.mark.parametrize("line, problem", [
    ("{not json", "invalid JSON"),
    ('"text"', "expected a JSON array"),
    (json.dumps([{"role": "assistant", "content": "hi"}]), "expected role 'user'"),
    (json.dumps([{"role": "user", "content": "hi"}]), "no assistant message"),
    (json.dumps([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "  "}]), "is empty"),
    (json.dumps([{"role": "user", "content": "hi"},
                 {"role": "assistant", "content": [{"type": "image", "text": "x"}]}]), "unknown part type"),
    ("[" * 100_000, "nested too deeply"),        # issue 15 re-attack: was a RecursionError traceback
])
def test_bad_lines_name_their_line(conversations, tmp_path, line, problem):
    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps(GOOD) + "\n" + line + "\n")
    with pytest.raises(UserError, match=f"line 2: .*{problem}"):
        conversations.read_conversations(f)
    kept = conversations.read_conversations(f, skip_bad=True)
    assert len(kept) == 1 and kept.skipped == 1


def test_write_then_read_round_trips_both_forms(conversations, offline, tmp_path):
    convs = offline.generate("followups", "train", 5)
    for form in conversations.FORMS:
        path = tmp_path / f"{form}.jsonl"
        assert conversations.write_conversations(path, convs, form) == 5
        back = conversations.read_conversations(path)
        assert [c["messages"] for c in back] == [c["messages"] for c in convs]
        assert ("answer" in back[0]) == (form == "messages")


def test_a_folder_is_a_user_error(conversations, tmp_path):
    """Issue 15 re-attack: `sft --mixture some_folder.jsonl` gave an IsADirectoryError traceback."""
    (tmp_path / "chats.jsonl").mkdir()
    with pytest.raises(UserError, match="conversation file .* is a folder"):
        conversations.read_conversations(tmp_path / "chats.jsonl")


def test_missing_file_is_a_user_error(conversations, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        conversations.read_conversations(tmp_path / "nope.jsonl")
