"""Phase 0 checkpoint: the chat format and its loss mask (swap with --impl chat=my_chat.py)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.phase0


def _names(tok, ids):
    return [tok.decode([i]) if tok.is_special(i) else "." for i in ids]


def test_mask_rules(golden_tok, chat):
    convo = {"messages": [
        {"role": "user", "content": "What is 12 + 30?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me compute."},
            {"type": "python", "text": "12 + 30"},
            {"type": "python_output", "text": "42"},
            {"type": "text", "text": "It is 42."}]},
    ]}
    ids, mask = chat.render_conversation(golden_tok, convo)
    enc, sp = golden_tok.encode, golden_tok.encode_special
    expected = (
        [(sp("<|bos|>"), 0), (sp("<|user_start|>"), 0)] + [(i, 0) for i in enc("What is 12 + 30?")]
        + [(sp("<|user_end|>"), 0), (sp("<|assistant_start|>"), 0)]
        + [(i, 1) for i in enc("Let me compute.")]
        + [(sp("<|python_start|>"), 1)] + [(i, 1) for i in enc("12 + 30")] + [(sp("<|python_end|>"), 1)]
        + [(sp("<|output_start|>"), 0)] + [(i, 0) for i in enc("42")] + [(sp("<|output_end|>"), 0)]
        + [(i, 1) for i in enc("It is 42.")] + [(sp("<|assistant_end|>"), 1)]
    )
    assert list(zip(ids, mask)) == expected


def test_multi_turn_and_string_content(golden_tok, chat):
    convo = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
             {"role": "user", "content": "bye"}, {"role": "assistant", "content": "ciao"}]
    ids, mask = chat.render_conversation(golden_tok, convo)
    assert len(ids) == len(mask)
    supervised = golden_tok.decode([i for i, m in zip(ids, mask) if m])
    assert supervised == "hello<|assistant_end|>ciao<|assistant_end|>"


def test_system_message_is_merged_into_first_user_turn(golden_tok, chat):
    with_system = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
                   {"role": "assistant", "content": "ok"}]
    merged = [{"role": "user", "content": "Be brief.\n\nhi"}, {"role": "assistant", "content": "ok"}]
    assert chat.render_conversation(golden_tok, with_system) == chat.render_conversation(golden_tok, merged)


def test_truncation(golden_tok, chat):
    convo = [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok"}]
    ids, mask = chat.render_conversation(golden_tok, convo, max_tokens=17)
    assert len(ids) == len(mask) == 17
    full, _ = chat.render_conversation(golden_tok, convo)
    assert ids == full[:17]


def test_render_for_completion(golden_tok, chat):
    convo = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    ids = chat.render_for_completion(golden_tok, convo)
    full, _ = chat.render_conversation(golden_tok, convo)
    prefix_len = full.index(golden_tok.encode_special("<|assistant_start|>")) + 1
    assert ids == full[:prefix_len]
    assert convo[-1] == {"role": "assistant", "content": "4"}  # the caller's list is untouched


@pytest.mark.parametrize("convo, problem", [
    ([], "no messages"),
    ({"msgs": []}, "no 'messages' key"),
    ([{"role": "assistant", "content": "hi"}], "expected role 'user'"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "expected role 'assistant'"),
    ([{"role": "user", "content": 3}], "must be a string"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": [{"type": "image", "text": "x"}]}],
     "unknown part type 'image'"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": [{"type": "text", "text": 5}]}],
     "'text' must be a string"),
    ([{"role": "user"}], "'role' and 'content'"),
    ([{"role": "system", "content": "s"}], "followed by a user message"),
])
def test_malformed_conversations_raise_one_clear_error(golden_tok, chat, convo, problem):
    with pytest.raises(ValueError, match=problem):
        chat.render_conversation(golden_tok, convo)


def test_completion_needs_a_final_assistant_message(golden_tok, chat):
    with pytest.raises(ValueError, match="ends with an assistant message"):
        chat.render_for_completion(golden_tok, [{"role": "user", "content": "hi"}])
