"""tools/template_builder.py: build, show, check, convert and prove a conversation's template."""
from __future__ import annotations

import io
import json

import pytest

from tests._tools import load_tool

tb = load_tool("template_builder")

CONV = {"messages": [{"role": "user", "content": "Maya has 23 pens and buys 17 more. How many?"},
                     {"role": "assistant", "content": [{"type": "python", "text": "23+17"},
                                                       {"type": "python_output", "text": "40"},
                                                       {"type": "text", "text": "#### 40"}]}]}


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    from phases.phase0_tokenizer.bpe import BPETokenizer
    folder = tmp_path_factory.mktemp("tok")
    BPETokenizer.train(["Maya has 23 pens and buys 17 more. How many? #### 40 hello world"] * 20, 300).save(folder)
    return folder


def _run(capsys, tok_dir, *argv):
    code = tb.main(["--tokenizer", str(tok_dir), "--no-color", *map(str, argv)])
    out = capsys.readouterr()
    return code, out.out, out.err


def _file(tmp_path, *lines):
    f = tmp_path / "c.jsonl"
    f.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return f


def test_show_lists_ids_specials_and_mask(capsys, tok_dir, tmp_path):
    code, out, _ = _run(capsys, tok_dir, "show", _file(tmp_path, CONV))
    assert code == 0
    rows = [line.split() for line in out.splitlines() if line.strip() and line.split()[0].isdigit()]
    by_token = {r[2]: r for r in rows if len(r) >= 4}
    assert by_token["<|python_start|>"][-1] == "1" and by_token["<|output_start|>"][-1] == "0"
    assert by_token["<|python_start|>"][3] == "yes"
    code, out, _ = _run(capsys, tok_dir, "show", "--stream", _file(tmp_path, CONV))
    assert "[<|python_start|>" in out and "trained on" in out


def test_check_applies_the_loader_rules(capsys, tok_dir, tmp_path):
    f = _file(tmp_path, CONV, [{"role": "user", "content": "hi"}], CONV)
    code, out, _ = _run(capsys, tok_dir, "check", f, "--seq-len", "512")
    assert code == 1 and "line 2: no assistant message" in out and "2 of 3 conversations pass" in out
    code, out, _ = _run(capsys, tok_dir, "check", _file(tmp_path, CONV), "--seq-len", "8")
    assert code == 1 and "the SFT rows drop it" in out
    code, out, _ = _run(capsys, tok_dir, "check", _file(tmp_path, CONV))
    assert code == 0


def test_export_both_forms_and_import_openai(capsys, tok_dir, tmp_path):
    out_file = tmp_path / "bare.jsonl"
    code, _, _ = _run(capsys, tok_dir, "export", _file(tmp_path, CONV), "--form", "list", "--out", out_file)
    assert code == 0 and json.loads(out_file.read_text()) == CONV["messages"]
    from phases.phase8_sft.template import to_openai
    openai = tmp_path / "openai.jsonl"
    openai.write_text(json.dumps({"messages": to_openai(CONV)}) + "\n")
    mine = tmp_path / "mine.jsonl"
    code, out, _ = _run(capsys, tok_dir, "import-openai", openai, "--out", mine)
    assert code == 0 and json.loads(mine.read_text()) == CONV


def test_roundtrip_and_jinja_proof(capsys, tok_dir, tmp_path):
    f = _file(tmp_path, CONV, [{"role": "system", "content": "Be brief."}, *CONV["messages"]])
    code, out, _ = _run(capsys, tok_dir, "roundtrip", f)
    assert code == 0 and out.count("identical") == 2
    template = tmp_path / "chat_template.jinja"
    code, out, _ = _run(capsys, tok_dir, "jinja", "--out", template, "--check", f)
    assert code == 0 and "2 of 2 conversations: same ids and same loss mask" in out
    assert "{% generation %}" in template.read_text().replace("{%- generation -%}", "{% generation %}")


def test_new_builds_a_conversation_from_prompts(capsys, tok_dir, tmp_path, monkeypatch):
    answers = iter(["Be brief.", "What is 6 times 7?", ">>> 6*7", "= 42", "#### 42", "", ""])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    out_file = tmp_path / "new.jsonl"
    code, out, _ = _run(capsys, tok_dir, "new", "--out", out_file)
    assert code == 0
    record = json.loads(out_file.read_text())
    assert record["messages"][0] == {"role": "system", "content": "Be brief."}
    assert record["messages"][2]["content"][0] == {"type": "python", "text": "6*7"}
    assert record["messages"][2]["content"][1] == {"type": "python_output", "text": "42"}


def test_user_mistakes_are_one_error_line(capsys, tok_dir, tmp_path):
    code, _, err = _run(capsys, tok_dir, "show", _file(tmp_path, CONV, "{oops"))
    assert code == 2 and "line 2: invalid JSON" in err and "Traceback" not in err
    code, _, err = _run(capsys, tok_dir, "show", tmp_path / "missing.jsonl")
    assert code == 2 and "does not exist" in err
    code, _, err = tb.main(["--tokenizer", str(tmp_path / "none"), "show", str(_file(tmp_path, CONV))]), None, \
        capsys.readouterr().err
    assert code == 2 and "no tokenizer" in err
