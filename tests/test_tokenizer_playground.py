"""Tests of the token views (phases/phase0_tokenizer/visualize.py) and tools/tokenizer_playground.py.

Every test runs with ``MINI_NANOCHAT_BASE_DIR`` pointing at a temporary folder, and the
tokenizers are trained here on a few lines of text, so nothing touches your home folder
and the whole file runs in seconds.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _tools import load_tool

from phases.phase0_tokenizer.bpe import BPETokenizer
from phases.phase0_tokenizer.chat import render_conversation
from phases.phase0_tokenizer.corpus import build_embedded_corpus
from phases.phase0_tokenizer.visualize import (TRAINED, colorize_tokens, merge_history, render_mask, split_characters,
                                               token_pieces, token_table)

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "tokenizer_playground.py"
# Emojis sharing the prefix F0 9F 98: BPE learns a token for those 3 bytes, so an emoji it
# never saw (😎 = F0 9F 98 8E) is cut in the middle of the character.
TRAIN_TEXT = ("hello world, the tokenizer splits text into tokens. " * 40
              + "😀😁😂😃😄😅😆😇 " * 20 + "def f(x):\n\treturn x * 2\r\n" * 10)
ANSI = re.compile(r"\x1b\[([0-9;]*)m")


tp = load_tool("tokenizer_playground")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("MINI_NANOCHAT_BASE_DIR", str(tmp_path / "base"))
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tok")
    BPETokenizer.train([TRAIN_TEXT], vocab_size=330).save(path)
    return path


@pytest.fixture(scope="module")
def tok(tok_dir) -> BPETokenizer:
    return BPETokenizer.load(tok_dir)


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    code = tp.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_script(*argv: str, input: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *argv], input=input, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=60, cwd=ROOT)


# -- visualize.py --------------------------------------------------------------------

def test_split_emoji_is_shown_as_hex_bytes_never_replacement_char(tok):
    text = "Hi 😎 there"
    ids = tok.encode(text)
    pieces = token_pieces(tok, ids)
    partial = [p for p in pieces if p.kind == "partial-UTF-8"]
    assert [p.label for p in partial] == ["·⟨F0 9F 98⟩", "⟨8E⟩"]  # text part as text, the rest hex
    views = [colorize_tokens(tok, ids, color=False), colorize_tokens(tok, ids, color=True), token_table(tok, ids)]
    for view in views:
        assert "\ufffd" not in view and "⟨F0 9F 98⟩" in view and "⟨8E⟩" in view
    assert [(c, raw) for c, _, _, raw in split_characters(tok, ids)] == [("😎", "😎".encode())]
    assert tok.decode(ids) == text  # the stream as a whole is still exact


@pytest.mark.parametrize("text", ["Hello 🙂 world", "naïve café 日本語", "a\r\n\tb  c\n\n", "\x1b[31mred\x00",
                                  "😀😁 tokens 12345", ""])
def test_pieces_bytes_concatenate_to_the_decoded_bytes(tok, text):
    ids = tok.encode(text, prepend="<|bos|>", append="<|assistant_end|>")
    pieces = token_pieces(tok, ids)
    assert len(pieces) == len(ids)
    assert b"".join(p.raw for p in pieces) == tok.decode_bytes(ids)
    assert pieces[0].special and pieces[0].text == "<|bos|>"


def test_whitespace_and_control_characters_are_visible(tok):
    ids = tok.encode("a b\tc\r\nd\x1b")
    plain = colorize_tokens(tok, ids, color=False)
    for mark in ("·", "→", "␍", "↵\n", "⟨1B⟩"):
        assert mark in plain
    assert "\x1b" not in plain and " " not in plain and "\t" not in plain
    raw = colorize_tokens(tok, ids, color=False, show_whitespace=False)
    assert " " in raw and "\t" in raw and "·" not in raw and "\x1b" not in raw


def test_colour_and_plain_streams(tok):
    ids = tok.encode("hello world, tokens")
    assert "\x1b[" in colorize_tokens(tok, ids, color=True)
    plain = colorize_tokens(tok, ids, color=False)
    assert "\x1b" not in plain and plain.count("|") == len(ids) - 1
    painted = ANSI.sub("", colorize_tokens(tok, ids, color=True))
    assert painted == plain.replace("|", "")


def test_table_byte_counts_are_the_real_token_bytes(tok):
    ids = tok.encode("Hi 🙂 there\n\tdef f(x): <|bos|>", prepend="<|bos|>")
    rows = token_table(tok, ids).splitlines()
    assert rows[0].split() == ["#", "id", "text", "bytes", "hex", "type"]
    assert len(rows) == len(ids) + 1
    for k, row in enumerate(rows[1:]):
        parts = row.split()  # the text column shows spaces as · so it never contains one
        index, token_id, nbytes = int(parts[0]), int(parts[1]), int(parts[3])
        assert (index, token_id) == (k, ids[k])
        assert nbytes == len(tok.token_bytes(token_id))
        assert "".join(parts[4:-1]).lower() == tok.token_bytes(token_id).hex()
    assert rows[1].split()[-1] == "special"


def test_merge_history_leaves_spell_the_token(tok):
    for token_id in (256, 256 + len(tok.merges) // 2, 255 + len(tok.merges)):
        tree = merge_history(tok, token_id)
        leaves = bytes(int(h, 16) for h in re.findall(r"= byte 0x([0-9A-F]{2})", tree))
        assert leaves == tok.token_bytes(token_id)
        assert f"merge #{token_id - 256}:" in tree.splitlines()[0]
    assert "base tokens" in merge_history(tok, 65)
    assert "special token" in merge_history(tok, tok.bos_token_id)


# -- the playground: views -------------------------------------------------------------

def test_text_view_stats_and_plain_output(capsys, tok_dir, tok):
    text = "hello 🙂 world"
    code, out, err = run_main(capsys, text, "--tokenizer", str(tok_dir))
    assert code == 0 and "\x1b" not in out  # captured output is not a terminal
    n = len(tok.encode(text))
    assert f"tokens {n}   characters {len(text)}   bytes {len(text.encode())}" in out
    assert f"bytes/token {len(text.encode()) / n:.2f}" in out
    assert colorize_tokens(tok, tok.encode(text), color=False) in out
    assert "'🙂' (U+1F642, bytes F0 9F 99 82) is split" in out and "\ufffd" not in out
    assert str(tok_dir) in out  # says which tokenizer is in use
    _, out, _ = run_main(capsys, text, "--tokenizer", str(tok_dir), "--no-table")
    assert "partial-UTF-8" not in out


def test_colour_flags_and_no_color(capsys, monkeypatch, tok_dir):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    assert "\x1b[" in run_main(capsys, "hello", "--tokenizer", str(tok_dir))[1]  # a terminal: colour
    assert "\x1b" not in run_main(capsys, "hello", "--tokenizer", str(tok_dir), "--no-color")[1]
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b" not in run_main(capsys, "hello", "--tokenizer", str(tok_dir))[1]
    assert "\x1b[" in run_main(capsys, "hello", "--tokenizer", str(tok_dir), "--color")[1]


def test_piped_output_has_no_ansi_codes(tok_dir):
    piped = run_script("hello 🙂", "--chat", "--special", "--tokenizer", str(tok_dir))
    assert piped.returncode == 0, piped.stderr
    assert "\x1b" not in piped.stdout and "<|bos|>" in piped.stdout
    forced = run_script("hello", "--color", "--tokenizer", str(tok_dir))
    assert "\x1b[" in forced.stdout


def test_special_lists_the_nine_tokens_with_ids(capsys, tok_dir, tok):
    code, out, _ = run_main(capsys, "--special", "--tokenizer", str(tok_dir))
    assert code == 0 and len(tok.special_tokens) == 9
    for name, token_id in tok.special_tokens.items():
        line = next(line for line in out.splitlines() if f" {name} " in f" {line} ")
        assert line.split()[0] == str(token_id) and tp.PURPOSES[name] in line


def test_vocab_ranges(capsys, tok_dir, tok):
    code, out, _ = run_main(capsys, "--vocab", "--tokenizer", str(tok_dir))
    n = len(tok.merges)
    assert code == 0 and f"vocabulary: {tok.vocab_size} ids" in out
    assert re.search(rf"256-{255 + n}\s+{n}\s+merged tokens", out)
    assert re.search(rf"{256 + n}-{tok.vocab_size - 1}\s+9\s+special tokens", out)


def test_compare_table_numbers(capsys, tok_dir, tok):
    texts = ["hello world", "🙂🙂", "12345 67"]
    code, out, _ = run_main(capsys, "--compare", *texts, "--tokenizer", str(tok_dir))
    assert code == 0
    rows = [line.split() for line in out.splitlines() if re.match(r"^\d+\s", line)]
    assert len(rows) == 3
    for row, text in zip(rows, texts):
        n, nbytes = len(tok.encode(text)), len(text.encode())
        assert row[-4:] == [str(len(text)), str(nbytes), str(n), f"{nbytes / n:.2f}"]


def test_against_shows_both_tokenizers(capsys, tmp_path, tok_dir, tok):
    other_dir = tmp_path / "other"
    other = BPETokenizer.train(["aaaa bbbb " * 50], vocab_size=280)
    other.save(other_dir)
    text = "hello world"
    code, out, _ = run_main(capsys, text, "--tokenizer", str(tok_dir), "--against", str(other_dir))
    assert code == 0 and str(tok_dir) in out and str(other_dir) in out
    assert f"main {len(tok.encode(text))} tokens, other {len(other.encode(text))} tokens" in out
    _, out, _ = run_main(capsys, "--compare", "hello", "aaaa", "--tokenizer", str(tok_dir),
                         "--against", str(other_dir))
    assert "other tokens" in out


def test_merges_of_an_id_and_of_a_text(capsys, tok_dir, tok):
    token_id = 255 + len(tok.merges)
    code, out, _ = run_main(capsys, "--merges", str(token_id), "--tokenizer", str(tok_dir))
    leaves = bytes(int(h, 16) for h in re.findall(r"= byte 0x([0-9A-F]{2})", out))
    assert code == 0 and leaves == tok.token_bytes(token_id)
    code, out, _ = run_main(capsys, "--merges", "hello tokens", "--tokenizer", str(tok_dir))
    heads = [int(line.split()[0]) for line in out.splitlines() if re.match(r"^\d+ '", line)]
    assert heads == list(dict.fromkeys(tok.encode("hello tokens")))
    code, _, err = run_main(capsys, "--merges", "99999", "--tokenizer", str(tok_dir))
    assert code == 2 and err.startswith("error: --merges 99999")


def test_chat_mask_colours_match_render_conversation(capsys, tok_dir, tok):
    ids, mask = render_conversation(tok, tp.EXAMPLE_CHAT)
    code, out, _ = run_main(capsys, "--chat", "--color", "--tokenizer", str(tok_dir))
    body = out.split("as the model sees it in training")[1].split("\n", 1)[1].split("\n\n")[0]
    codes = ANSI.findall(body)[::2]  # each token: its colour code, then the reset
    trained = set(TRAINED)
    got = [1 if c.removesuffix(";1") in trained else 0 for c in codes]
    assert code == 0 and got == mask
    assert f"{len(ids)} tokens, {sum(mask)} trained on" in out


def test_chat_plain_brackets_mark_the_trained_tokens(tok):
    ids, mask = render_conversation(tok, tp.EXAMPLE_CHAT)
    text = render_mask(tok, ids, mask, color=False).split("\n\n")[0]
    pieces = token_pieces(tok, ids)
    runs, current = [], []
    for p, m in zip(pieces, mask):
        if m:
            current.append(p.text)
        elif current:
            runs, current = runs + ["|".join(current)], []
    runs += ["|".join(current)] if current else []
    shown = re.findall(r"\[(.*?)\]", text, flags=re.S)
    assert shown == runs and len(runs) == 3  # text+tool call, answer, "You're welcome"


@pytest.mark.parametrize("content, problem", [
    ('{"messages": [', "not valid JSON"),
    ('[{"role": "assistant", "content": "hi"}]', "expected role 'user'"),
    ('{"msgs": []}', "no 'messages' key"),
    ('[{"role": "user", "content": "q"}, {"role": "assistant", "content": [{"type": "img"}]}]', "unknown part"),
])
def test_malformed_conversation_is_one_error_line(capsys, tmp_path, tok_dir, content, problem):
    path = tmp_path / "convo.json"
    path.write_text(content)
    code, out, err = run_main(capsys, "--chat", str(path), "--tokenizer", str(tok_dir))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: --chat {path}") and problem in err


def test_chat_from_stdin_bare_list(tok_dir):
    convo = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    done = run_script("--chat", "-", "--tokenizer", str(tok_dir), input=json.dumps(convo))
    assert done.returncode == 0 and "[" in done.stdout and "Traceback" not in done.stderr


def test_interactive_mode_through_stdin(tok_dir):
    done = run_script("-i", "--tokenizer", str(tok_dir),
                      input="hello\nspecial\ncompare a | bb\nmerges 300\ntable off\nchat\n\\help\nquit\n")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "== tokens" in out and "<|assistant_end|>" in out and "comparison of 2 texts" in out
    assert "merge history of token 300" in out and "detail table off" in out
    assert "Traceback" not in done.stderr and "\x1b" not in out
    eof = run_script("-i", "--tokenizer", str(tok_dir), input="hello")  # no quit: EOF ends it cleanly
    assert eof.returncode == 0 and "== tokens" in eof.stdout


# -- the playground: which tokenizer -----------------------------------------------------

def test_no_tokenizer_trains_a_small_one_and_reuses_it(capsys, monkeypatch, tmp_path):
    corpus = tmp_path / "corpus"

    def tiny_corpus(out_dir=None, show_progress=True):  # two stdlib modules, not the whole install
        return build_embedded_corpus(corpus, packages=(), stdlib_modules=("json", "textwrap"),
                                     include_topics=False, show_progress=False)

    monkeypatch.setattr(tp, "ensure_embedded_corpus", tiny_corpus)
    monkeypatch.setattr(tp, "PLAYGROUND_VOCAB", 300)
    monkeypatch.setattr(tp, "PLAYGROUND_CHARS", 20_000)
    code, out, err = run_main(capsys, "hello", "--no-progress")
    assert code == 0, err
    assert "trains a small one" in err and "small playground tokenizer" in out
    saved = tmp_path / "base" / "playground_tokenizer" / "tokenizer.json"
    assert saved.is_file() and BPETokenizer.load(saved).vocab_size == 300

    monkeypatch.setattr(tp, "ensure_embedded_corpus", lambda *a, **k: pytest.fail("trained twice"))
    code, out, err = run_main(capsys, "hello")
    assert code == 0 and "using the playground's small one" in err and str(saved) in out


def test_trained_tokenizer_is_preferred(capsys, tok_dir):
    BPETokenizer.load(tok_dir).save(Path(os.environ["MINI_NANOCHAT_BASE_DIR"]) / "tokenizer")
    code, out, err = run_main(capsys, "hello")
    assert code == 0 and err == "" and "tokenizer/tokenizer.json (vocab 330" in out


def test_tokenizer_flag_without_tokenizer_is_an_error(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    code, out, err = run_main(capsys, "hi", "--tokenizer", str(tmp_path / "empty"))
    assert code == 2 and out == "" and err.startswith("error: --tokenizer")
    assert not (tmp_path / "base" / "playground_tokenizer").exists()  # no silent training


def test_help_from_another_folder_documents_every_flag(tmp_path):
    done = subprocess.run([sys.executable, str(TOOL), "--help"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert done.returncode == 0
    for flag in ("--interactive", "--special", "--vocab", "--compare", "--against", "--merges", "--chat",
                 "--tokenizer", "--no-color", "--table", "examples:"):
        assert flag in done.stdout
