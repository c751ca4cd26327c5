"""Phase 8 checkpoint: the chat format seen from outside (parse back, OpenAI, Jinja) agrees with Phase 0."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phases.phase0_tokenizer.chat import ConversationError, render_conversation

pytestmark = pytest.mark.phase8

TOOLS = {"messages": [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Maya has 23 pens and buys 17 more."},
    {"role": "assistant", "content": [{"type": "text", "text": "Let me add. "}, {"type": "python", "text": "23+17"},
                                      {"type": "python_output", "text": "40"}, {"type": "text", "text": "#### 40"}]},
    {"role": "user", "content": "Thanks!"}, {"role": "assistant", "content": "You're welcome!"}]}


def _render(tok, conv):
    return render_conversation(tok, conv, max_tokens=1 << 62)


def _all_offline(offline, n=40):
    return [c for task in offline.TASKS for c in offline.generate(task, "train", n)]


def test_render_parse_render_is_identical(template, offline, chat_tok):
    for conv in _all_offline(offline) + [TOOLS]:
        ids, mask = _render(chat_tok, conv)
        back = template.parse_tokens(chat_tok, ids)
        assert _render(chat_tok, back) == (ids, mask)
        assert back["messages"] == template.normalise(conv)["messages"]      # system merged, as rendered


def test_jinja_template_gives_the_same_ids_and_mask(template, offline, chat_tok):
    for conv in _all_offline(offline) + [TOOLS]:
        assert template.jinja_ids_and_mask(chat_tok, conv) == _render(chat_tok, conv)


def test_generation_prompt_matches_render_for_completion(template, chat_tok):
    from phases.phase0_tokenizer.chat import render_for_completion
    text, _ = template.render_jinja(TOOLS["messages"][:2], add_generation_prompt=True)
    assert template.encode_with_specials(chat_tok, text) == render_for_completion(chat_tok, TOOLS["messages"][:3])


def test_openai_messages_round_trip(template):
    openai = template.to_openai(TOOLS)
    assert [m["role"] for m in openai] == ["system", "user", "assistant", "tool", "assistant", "user", "assistant"]
    assert openai[2]["tool_calls"][0]["function"]["arguments"] == '{"expression": "23+17"}'
    assert template.from_openai(openai) == TOOLS


def test_openai_import_of_raw_and_named_arguments(template):
    msgs = [{"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": None, "tool_calls": [{"function": {"name": "python", "arguments": "2+2"}}]},
            {"role": "tool", "content": "4"}, {"role": "assistant", "content": "#### 4"}]
    assert template.from_openai(msgs)["messages"][1]["content"] == [
        {"type": "python", "text": "2+2"}, {"type": "python_output", "text": "4"}, {"type": "text", "text": "#### 4"}]
    with pytest.raises(ConversationError, match="tool result must follow"):
        template.from_openai([{"role": "user", "content": "x"}, {"role": "tool", "content": "4"}])


@pytest.mark.parametrize("cut, problem", [(0, "starts with <|bos|>"), (-1, "end inside")])
def test_parse_refuses_broken_ids(template, chat_tok, cut, problem):
    ids, _ = _render(chat_tok, TOOLS)
    broken = ids[1:] if cut == 0 else ids[:cut]
    with pytest.raises(ConversationError, match=problem):
        template.parse_tokens(chat_tok, broken)


def test_adjacent_text_parts_are_joined_by_normalise(template):
    conv = [{"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "hel"}, {"type": "text", "text": "lo"}]}]
    assert template.normalise(conv)["messages"][1]["content"] == "hello"


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12).filter(lambda s: "<|" not in s)
_part = st.tuples(st.sampled_from(["text", "python", "python_output"]), _text).map(
    lambda p: {"type": p[0], "text": p[1]})


@st.composite
def _conversations(draw):
    messages = []
    for _ in range(draw(st.integers(1, 3))):
        messages.append({"role": "user", "content": draw(_text)})
        content = draw(st.one_of(_text, st.lists(_part, max_size=4)))
        messages.append({"role": "assistant", "content": content})
    return {"messages": messages}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conv=_conversations())
def test_any_conversation_round_trips(template, chat_tok, conv):
    norm = template.normalise(conv)
    ids, mask = _render(chat_tok, norm)
    assert template.parse_tokens(chat_tok, ids)["messages"] == norm["messages"]
    assert template.jinja_ids_and_mask(chat_tok, norm) == (ids, mask)
