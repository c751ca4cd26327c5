"""Phase 6 checkpoint, part 5: the chat session (run against yours with --impl session=my_session.py).

Exact: turn k of a session that reuses its cache produces the same tokens as a fresh
prefill of the whole conversation (same seed); only the new turn is prefilled; the tokens
are Phase 0's chat format.
"""
from __future__ import annotations

import pytest

from phases.phase0_tokenizer.chat import render_conversation, render_for_completion

pytestmark = pytest.mark.phase6

MESSAGES = ["What is 2+2?", "And 12*7?", "Say hello.", "Déjà vu? 🙂", "Thanks!"]


def _fresh(engine_mod, engine, prompt, params):
    """The reference: the whole conversation prefilled from scratch in a new cache."""
    return engine.generate_batch(prompt, max_tokens=params.max_tokens, temperature=params.temperature,
                                 top_k=params.top_k, top_p=params.top_p, seed=params.seed)[0]


def test_each_turn_with_cache_reuse_equals_reprefilling_the_conversation(engine_mod, session_mod, tok, model):
    engine = engine_mod.Engine(model, tok)
    session = session_mod.Session(engine, system="Be brief.",
                                  params=engine_mod.SamplingParams(max_tokens=12, temperature=0.9, seed=4))
    before = 0
    for k, message in enumerate(MESSAGES):
        reply = session.send(message)
        prompt = list(session.tokens)
        if k:
            assert reply.reused == before and reply.prefilled == len(prompt) - before   # only the new turn
            assert reply.prefilled <= len(tok.encode(message)) + 6
        reply.read()
        assert reply.tokens == _fresh(engine_mod, engine, prompt, reply.params).tokens
        assert session.tokens[:len(prompt)] == prompt
        before = session.cached


def test_the_tokens_are_the_chat_format(engine_mod, session_mod, tok, model):
    history = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
               {"role": "assistant", "content": "hello"}, {"role": "user", "content": "2+2?"},
               {"role": "assistant", "content": [{"type": "python", "text": "2+2"},
                                                 {"type": "python_output", "text": "4"},
                                                 {"type": "text", "text": "It is 4."}]}]
    session = session_mod.Session(engine_mod.Engine(model, tok))
    session.load(history)
    assert session.tokens == render_conversation(tok, history)[0][:-1]     # the last reply is still open
    session.send("Thanks")
    placeholder = {"role": "assistant", "content": ""}
    assert session.tokens[:len(session.tokens)] == render_for_completion(
        tok, history + [{"role": "user", "content": "Thanks"}, placeholder])[:len(session.tokens)]
    assert session.messages[0] == {"role": "system", "content": "Be brief."}


def test_a_conversation_that_outgrows_the_context_drops_the_oldest_turns(engine_mod, session_mod, tok, model):
    engine = engine_mod.Engine(model, tok)
    params = engine_mod.SamplingParams(max_tokens=10, temperature=0.0)
    session = session_mod.Session(engine, system="Sys.", max_len=90, params=params)
    dropped = 0
    for message in MESSAGES * 2:
        reply = session.send(message)
        prompt = list(session.tokens)
        reply.read()
        dropped += reply.dropped_turns
        assert session.cached <= 90
        assert reply.tokens == _fresh(engine_mod, engine, prompt, reply.params).tokens
        kept = session.messages
        assert kept[0]["role"] == "system" and kept[1]["role"] == "user"    # the system prompt stays
    assert dropped > 0
    assert len(session.exchanges) < len(MESSAGES) * 2


def test_undo_regenerate_and_edit_roll_the_cache_back(engine_mod, session_mod, tok, model):
    engine = engine_mod.Engine(model, tok)
    params = engine_mod.SamplingParams(max_tokens=10, temperature=1.0, seed=1)
    session = session_mod.Session(engine, params=params)
    session.send(MESSAGES[0]).read()
    first = session.send(MESSAGES[1])
    first.read()
    state = (list(session.tokens), first.tokens)

    again = session.regenerate(seed=first.params.seed)                       # the same seed: the same reply
    assert again.prefilled == 1 and again.read() == first.text and again.tokens == first.tokens
    other = session.regenerate()                                             # a fresh seed
    other.read()
    assert other.params.seed != first.params.seed

    session.undo()
    assert len(session.exchanges) == 1 and session.cached <= len(session.tokens)
    redo = session.send(MESSAGES[1], seed=first.params.seed)
    redo.read()
    assert (list(session.tokens), redo.tokens) == state

    edited = session.edit(0, "Something else")
    edited.read()
    alone = session_mod.Session(engine, params=params)
    ref = alone.send("Something else", seed=edited.params.seed)
    ref.read()
    assert session.tokens == alone.tokens and edited.tokens == ref.tokens
    with pytest.raises(IndexError):
        session.edit(5, "no such message")
