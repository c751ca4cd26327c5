"""Phase 6 checkpoint, part 4: streaming detokenisation (run against yours with --impl detok=my_detok.py).

Exact, property-tested: what ``push`` and ``flush`` return, joined, equals the tokenizer's
one-shot ``decode`` for any token sequence; valid text is never streamed with U+FFFD.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.phase6


def _stream(detok, tok, ids):
    dec = detok.StreamDecoder(tok)
    pieces = [dec.push(t) for t in ids]
    return pieces, dec.flush()


def test_a_character_split_over_tokens_is_printed_once_whole(detok, tok):
    ids = tok.encode("🙂")                                  # 4 bytes; no merge covers them all
    assert len(ids) > 1
    pieces, rest = _stream(detok, tok, ids)
    assert pieces[:-1] == [""] * (len(ids) - 1) and pieces[-1] == "🙂" and rest == ""


def test_an_unfinished_character_is_flushed_as_a_replacement(detok, tok):
    half = tok.encode("é")[:1] if len(tok.encode("é")) > 1 else [0xC3]
    pieces, rest = _stream(detok, tok, [*tok.encode("ok "), 0xC3])
    assert "".join(pieces) == "ok " and rest == "\ufffd" and half


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_valid_text_streams_without_replacement_characters(detok, tok, text):
    ids = tok.encode(text)
    pieces, rest = _stream(detok, tok, ids)
    assert "".join(pieces) + rest == text
    assert all("\ufffd" not in p for p in pieces) or "\ufffd" in text


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 1 << 20), max_size=30))
def test_any_token_sequence_streams_to_the_one_shot_decode(detok, tok, ids):
    """Random ids: invalid UTF-8, lone continuation bytes, special tokens, all mixed."""
    ids = [i % tok.vocab_size for i in ids]
    pieces, rest = _stream(detok, tok, ids)
    assert "".join(pieces) + rest == tok.decode(ids)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([0x41, 0x80, 0xBF, 0xC2, 0xC3, 0xA9, 0xE0, 0xA0, 0xED, 0x9F, 0xB0, 0xF0,
                                 0x90, 0x9F, 0x99, 0x82, 0xF4, 0x8F, 0xF5, 0xFF]), max_size=24))
def test_adversarial_byte_runs_stream_to_the_one_shot_decode(detok, tok, ids):
    """Byte tokens chosen to make near-miss sequences: truncated leads, surrogates (ED A0..), overlongs."""
    pieces, rest = _stream(detok, tok, ids)
    assert "".join(pieces) + rest == tok.decode(ids)
