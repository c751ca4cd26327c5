"""Tests of tools/dataset_inspector.py: validation messages with line numbers, lengths, duplicates, export.

The chat file below holds one example of every mistake the validator must name; the
parquet cases use the shared tiny corpus and tokenizer (tests/conftest.py). Seconds.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _tools import load_tool

di = load_tool("dataset_inspector")
pytestmark = pytest.mark.phase5
ROOT = Path(__file__).resolve().parent.parent
GOOD = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "It is 4."}]
TOOL = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Add 2 and 2"},
                     {"role": "assistant", "content": [{"type": "python", "text": "2+2"},
                                                       {"type": "python_output", "text": "4"},
                                                       {"type": "text", "text": "It is 4."},
                                                       {"type": "python", "text": "4*1"}]}]}
LINES = [
    json.dumps(GOOD),                                                     # 1 ok: bare array
    json.dumps(TOOL),                                                     # 2 ok: {"messages": ...}, 2 tool calls
    '{"messages": [{"role": "user", "content": "hi"}',                    # 3 truncated JSON
    '"just a string"',                                                    # 4 wrong type
    '{"msgs": []}',                                                       # 5 no messages key
    json.dumps([{"role": "assistant", "content": "I speak first"}]),      # 6 wrong role order
    "",                                                                   # 7 blank: skipped, not an error
    json.dumps([{"role": "user", "content": "  "}, {"role": "assistant", "content": "x"}]),  # 8 empty content
    json.dumps([{"role": "user", "content": "q"}, {"role": "assistant", "content": [{"type": "image"}]}]),  # 9
    json.dumps(GOOD),                                                     # 10 exact duplicate of line 1
]


@pytest.fixture
def chat_file(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(LINES) + "\n")
    return path


def run(*argv):
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "dataset_inspector.py"), *map(str, argv)],
                          capture_output=True, text=True, cwd=ROOT, env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin",
                                                                          "MINI_NANOCHAT_BASE_DIR": str(ROOT / ".nonexistent")})
    return proc


def test_validation_names_every_broken_line(chat_file, capsys):
    code = di.main([str(chat_file), "--validate", "--json", "--samples", "0"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    problems = report["problems"]
    assert [p.split(":")[0] for p in problems] == ["line 3", "line 4", "line 5", "line 6", "line 8", "line 9"]
    assert "invalid JSON" in problems[0]
    assert "got str" in problems[1]
    assert "no 'messages' key" in problems[2]
    assert "expected role 'user', got 'assistant'" in problems[3]
    assert "empty content" in problems[4]
    assert "unknown part type 'image'" in problems[5]
    assert report["records"] == 3 and report["bad_lines"] == 6 and report["blank_lines"] == 1


def test_chat_stats_count_tool_calls_per_part(chat_file, capsys):
    di.main([str(chat_file), "--json", "--samples", "0"])
    r = json.loads(capsys.readouterr().out)
    assert (r["tool_calls"], r["tool_outputs"], r["conversations_with_tools"], r["with_system"]) == (2, 1, 1, 1)
    assert r["roles"] == {"user": 3, "assistant": 3, "system": 1}


def test_samples_show_the_loss_mask_and_depend_on_the_seed(chat_file, tiny_tokenized, capsys):
    args = [str(chat_file), "--tokenizer", tiny_tokenized["tokenizer_dir"], "--samples", "1", "--color"]
    di.main(args + ["--seed", "1"])
    out = capsys.readouterr().out
    assert "<|assistant_start|>" in out and re.search(r"\x1b\[[0-9;]*m", out)  # coloured by mask
    picks = set()
    for seed in range(6):
        di.main(args + ["--seed", str(seed), "--json"])
        picks.add(json.loads(capsys.readouterr().out)["samples"][0]["where"])
    assert len(picks) > 1                                                # the seed changes the draw
    di.main(args + ["--seed", "3", "--json"])
    first = capsys.readouterr().out
    di.main(args + ["--seed", "3", "--json"])
    assert capsys.readouterr().out == first                              # and fixes it


def test_length_percentiles_and_share_over_max_seq_len(tiny_corpus, tiny_tokenized, capsys):
    from phases.phase0_tokenizer.bpe import BPETokenizer
    di.main([tiny_corpus.shards[0], "--analyze-lengths", "--max-seq-len", "256", "--json", "--samples", "0",
             "--tokenizer", tiny_tokenized["tokenizer_dir"]])
    L = json.loads(capsys.readouterr().out)["lengths"]
    tok = BPETokenizer.load(tiny_tokenized["tokenizer_dir"])
    texts = pq.read_table(tiny_corpus.shards[0]).column("text").to_pylist()
    lengths = sorted(len(tok.encode(t)) + 1 for t in texts)             # + BOS, as the loader sees them
    assert L["unit"] == "tokens" and L["count"] == len(texts) and L["max"] == lengths[-1]
    assert L["p50"] == pytest.approx(float(__import__("numpy").percentile(lengths, 50)))
    assert L["over_max_seq_len"] == pytest.approx(sum(n > 256 for n in lengths) / len(lengths))
    assert L["p50"] <= L["p90"] <= L["p99"] <= L["max"]


def test_exact_and_near_duplicates(tmp_path, capsys):
    base = " ".join(f"word{i}" for i in range(200))
    near = base.replace("word100", "changed")                            # one word of 200 differs
    texts = [base, "something else entirely " * 20, base, near, "unrelated text number two " * 15]
    pq.write_table(pa.table({"text": texts}), tmp_path / "shard_00000.parquet")
    di.main([tmp_path, "--duplicates", "--json", "--samples", "0"])
    d = json.loads(capsys.readouterr().out)["duplicates"]
    assert d["exact_groups"] == [["shard_00000.parquet row group 0 row 0", "shard_00000.parquet row group 0 row 2"]]
    assert [p[:2] for p in d["near_pairs"]] == [["shard_00000.parquet row group 0 row 0",
                                                  "shard_00000.parquet row group 0 row 3"]]


def test_export_writes_what_the_loaders_accept(chat_file, tmp_path, capsys):
    out = tmp_path / "clean.jsonl"
    di.main([chat_file, "--export", out, "--samples", "0"])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 3 and all(set(x) == {"messages"} for x in lines)
    capsys.readouterr()
    assert di.main([out, "--validate", "--samples", "0"]) == 0           # the export validates clean


def test_broken_parquet_is_named(tmp_path, capsys):
    (tmp_path / "shard_00000.parquet").write_bytes(b"garbage" * 50)
    pq.write_table(pa.table({"content": ["x"]}), tmp_path / "shard_00001.parquet")
    assert di.main([tmp_path, "--validate", "--json", "--samples", "0"]) == 1
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert "shard_00000.parquet: not a readable parquet file" in problems[0]
    assert "shard_00001.parquet: no string column 'text'" in problems[1]


def test_cli_errors_are_clear_and_plain_output_reads_well(tmp_path, chat_file):
    p = run(tmp_path / "missing.jsonl")
    assert p.returncode == 2 and "does not exist" in p.stderr and "Traceback" not in p.stderr
    p = run(chat_file, "--samples", "-1")
    assert p.returncode == 2 and "--samples must be positive" in p.stderr
    p = run(chat_file, "--validate", "--analyze-lengths")
    assert p.returncode == 1 and "line 3: invalid JSON" in p.stdout and "p50" in p.stdout
    assert "no tokenizer found" in p.stdout and "\x1b[" not in p.stdout
