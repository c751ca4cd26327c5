"""Phase 0 checkpoint: the tiktoken fast path gives exactly the pure-Python ids."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.phase0
tiktoken = pytest.importorskip("tiktoken")

# Text biased towards what tokenizers find hard: mixed scripts, digits, whitespace runs,
# punctuation, emoji with modifiers, plus the whole of Unicode (no lone surrogates:
# those always take the pure-Python path, see fast.py).
PIECES = st.sampled_from(["the", " the", "  ", "\n", "\r\n", "\t", "123", "4567", "'s", "'LL",
                          "🙂", "👍🏽", "日本", "é", "e\u0301", "()", "->", "...", "_x", "Ωμ"])
TEXT = st.one_of(st.text(), st.lists(st.one_of(PIECES, st.text(max_size=3))).map("".join))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXT)
def test_fast_path_matches_python(golden_tok, text):
    from phases.phase0_tokenizer.fast import to_tiktoken
    enc = to_tiktoken(golden_tok)
    assert enc.encode_ordinary(text) == golden_tok.encode_ordinary_python(text)


def test_fast_path_matches_python_on_the_golden_text(golden_tok, golden_text):
    from phases.phase0_tokenizer.fast import to_tiktoken
    assert to_tiktoken(golden_tok).encode_ordinary(golden_text) == golden_tok.encode_ordinary_python(golden_text)


def test_encode_uses_fast_path_and_falls_back_on_surrogates(golden_tok):
    text = "fast \ud800 slow"
    assert golden_tok.decode(golden_tok.encode(text)) == text  # the Python path kept it exact
    from phases.phase0_tokenizer.fast import fast_encode_ordinary
    assert fast_encode_ordinary(golden_tok, text) is None
    assert fast_encode_ordinary(golden_tok, "plain") == golden_tok.encode_ordinary_python("plain")
