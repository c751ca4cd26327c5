"""Shown output is true, for the four guides of docs/start/ (issue 20).

- The deterministic outputs the guides show (the calculator, the offline chat data, the
  tool-call stream, pass@k and centring) are produced again and compared line by line with
  ``assert_shown`` from the lessons' test. The sandbox's attack list is compared by attack and
  outcome (its timings are measured): marked slow, it runs the attacks (about 20 s).
- Every ``-k`` selection the feature-implementation guide cites selects tests of its file.
- Every error or warning the troubleshooting guide quotes is still printed by the code: each
  quoted message has an entry below whose fragments (the literal parts of the message,
  between the values that vary) occur both in the quote and in the source. A quote without an
  entry fails, so a new quote needs its fragments here; a reworded message fails until the
  guide follows. Three of the quick ones are also run.
Training outputs (the demo, the evaluation of the 30-step model) are measurements, not
checked here.
"""
from __future__ import annotations

import ast
import re
import shlex
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest
from test_lesson_outputs import assert_shown, run, shown_block

REPO = Path(__file__).resolve().parents[1]
TOOLS_GUIDE = "docs/start/tools-and-capabilities.md"
EVAL_GUIDE = "docs/start/evaluation.md"
FEATURE_GUIDE = "docs/start/feature-implementation.md"
TROUBLE_GUIDE = "docs/start/troubleshooting.md"
PY = sys.executable


def commands(shown: list[str]) -> list[tuple[str, list[str]]]:
    """A block of ``$ command`` lines each followed by its output -> [(command, output lines)]."""
    out: list[tuple[str, list[str]]] = []
    for line in shown:
        if line.startswith("$ "):
            out.append((line[2:], []))
        else:
            out[-1][1].append(line)
    return out


def run_shown(command: str) -> str:
    argv = shlex.split(command)
    if argv[0] == "python":
        argv[0] = PY
    return run(argv)


# -- the tools guide --------------------------------------------------------------------------

@pytest.mark.parametrize("after", ["Run with no arguments, the module shows five examples",
                                   "The CPU demo has no network, so Phase 8 writes",
                                   "so a call is held back until it is complete"])
def test_tools_guide_outputs(after):
    block = commands(shown_block(TOOLS_GUIDE, after))
    assert block
    for command, shown in block:
        assert_shown(shown, run_shown(command))


@pytest.mark.slow
def test_tools_guide_sandbox_attack_list():
    """Every attack the guide lists ends the same way now (the milliseconds are measured)."""
    shown = shown_block(TOOLS_GUIDE, "run with a 1-second timeout in the")
    assert shown[0] == "$ pytest -q phases/phase7_eval/test_sandbox.py"
    row = re.compile(r"^(\S.*?)\s+\d+ ms  (.*)$")
    r = subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "phases/phase7_eval/test_sandbox.py"],
                       cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:]
    now = {m.group(1): m.group(2) for m in map(row.match, r.stdout.splitlines()) if m}
    rows = [m for m in map(row.match, shown) if m]
    assert len(rows) >= 20
    for m in rows:
        label, outcome = m.groups()
        assert label in now, f"the guide lists the attack {label!r}, which the test no longer runs"
        # a path in the outcome differs between runs: compare up to it
        assert now[label].split("(/")[0] == outcome.split("(/")[0], (label, now[label], outcome)


# -- the evaluation guide ---------------------------------------------------------------------

@pytest.mark.parametrize("after", ["The function is Phase 7's own:", "not `1 − (1 − c/n)^k`"])
def test_evaluation_guide_formulas(after):
    for command, shown in commands(shown_block(EVAL_GUIDE, after)):
        assert command.startswith('python -c "')
        assert_shown(shown, run([PY, "-c", shlex.split(command)[2]]))


# -- the feature implementation guide ---------------------------------------------------------

def _test_names(path: Path) -> list[str]:
    return re.findall(r"^def (test_\w+)", path.read_text(encoding="utf-8"), re.M)


def test_every_cited_selection_selects_tests():
    """Each ``-k`` of the guide (an 'or' of substrings) matches a test of the file its project names."""
    text = (REPO / FEATURE_GUIDE).read_text(encoding="utf-8")
    checked = 0
    for section in re.split(r"\n## ", text):
        files = re.findall(r"pytest -q (tests/test_\w+\.py)", section)
        if not files:
            continue
        assert len(set(files)) == 1, section[:80]
        names = _test_names(REPO / files[0])
        for expr in re.findall(r'-k "([^"]+)"|-k (\w+)', section):
            words = [w.strip() for w in (expr[0] or expr[1]).split(" or ")]
            assert all(re.fullmatch(r"\w+", w) for w in words), expr
            for w in words:
                assert any(w in n for n in names), f"-k {w} selects no test of {files[0]}"
            checked += 1
    assert checked >= 40


# -- the troubleshooting guide ----------------------------------------------------------------

# Each quoted message -> the fragments of it that the code prints literally.
MESSAGES = {
    "error: serving needs FastAPI": ["serving needs FastAPI and uvicorn: pip install 'mini-nanochat[serve]'"],
    "error: the PNG needs matplotlib": ["the PNG needs matplotlib: pip install 'mini-nanochat[tools]'"],
    "error: no tokenizer at": ["no tokenizer at ", "; train one with "],
    "error: corrupt tokenizer file": ["corrupt tokenizer file "],
    "tokens but the model expects": [" tokens but the model expects ", "not the tokenizer this run trained with"],
    "error: no trained model under": ["no trained model under ", ": train one with `mini-nanochat demo` "],
    "warning: warmup_steps": ["warmup_steps ", " >= num_iterations ", ": the learning rate never ",
                              "reaches its peak (it stops at ", " x lr); ", "lower warmup_steps, e.g. --set warmup_steps="],
    "warning: the warmup": ["the warmup (", " steps) runs into the warmdown (from step "],
    "error: training diverged": ["training diverged at step ", "); lower the learning rates"],
    "error: MINI_NANOCHAT_DTYPE": ["MINI_NANOCHAT_DTYPE=", ": use bfloat16, float16 or float32"],
    "error: depth 64": ["depth ", " has about ", " parameters: training ",
                        "needs at least ", " for weights, gradients and optimizer state ",
                        " bytes per parameter, activations not counted), but ", "; choose a smaller --depth"],
    "error: found RANK but not all": ["found ", " but not all of ", " in the ",
                                      "environment; launch with torchrun (or set all three)"],
    "error: device 'cuda' asked for": ["device ", " asked for, but CUDA is not available"],
    "[rank 0] error:": ["(a collective failed: a peer probably failed first or hangs; the first '[rank r] error' ",
                        "line is the cause)"],
    "already holds checkpoints": [" already holds checkpoints; pass --resume to continue it, ",
                                  "or choose another run_name / run_dir"],
    "warning: skipping bad checkpoint": ["skipping bad checkpoint: ", "checkpoint file ", " were saved (corrupt or truncated since it was saved)"],
    "error: nothing to resume": ["nothing to resume: no good checkpoint in "],
    "was made with another model configuration": [" was made with another model configuration; ",
                                                  "resume with the same model settings"],
    "keep it to resume": [" used total_batch_size ", "; keep it to resume"],
    "error: cannot listen on": ["cannot listen on ", " (try another --port)"],
    "error: refusing to listen on": ["refusing to listen on ", " without --api-key: anyone who can reach this ",
                                     "machine could use the model (keep the default 127.0.0.1, or set a key)"],
    "is out of range": [" is out of range"],
    "only answers requests addressed to localhost": ["this server only answers requests addressed to localhost, not ",
                                                     " (start it with --host and --api-key to serve other names)"],
    "does not exist; this server serves": ["the model ", " does not exist; this server serves "],
    "a valid API key is required": ["a valid API key is required: send 'Authorization: Bearer <key>'"],
    "function calling is not supported": [": ", " is not supported by this server", "function calling"],
    "(base model: it continues text, it does not chat)": ["base model: it continues text, it does not chat"],
}


@lru_cache(maxsize=1)
def source_literals() -> str:
    """Every string literal of the project's code, f-strings cut at their placeholders, one a line."""
    chunks: list[str] = []
    for folder in ("phases", "mini_nanochat", "tools"):
        for path in (REPO / folder).rglob("*.py"):
            if path.name.startswith("test_"):
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    chunks.append(node.value)
                elif isinstance(node, ast.JoinedStr):
                    chunks.extend(v.value if isinstance(v, ast.Constant) else "\n" for v in node.values)
    return "\n".join(chunks)


def quoted_messages() -> list[str]:
    """The project's messages the guide quotes: inline code that starts with `error:`, `warning:`
    or `[rank`, the inline code of the HTTP rows, and such lines (and the server's startup line)
    in its text blocks."""
    text = (REPO / TROUBLE_GUIDE).read_text(encoding="utf-8")
    blocks = re.findall(r"```text\n(.*?)\n```", text, re.S)
    prose = re.sub(r"```text\n.*?\n```", "", text, flags=re.S)
    spans = [m.group(2).strip() for m in re.finditer(r"(`+)(.+?)\1", prose)]
    quoted = [s for s in spans if re.match(r"(error|warning): |\[rank \d+\] error: ", s)]
    quoted += re.findall(r"^\| HTTP \d+ `([^`]+)`", text, re.M)
    quoted += [line for b in blocks for line in b.splitlines()
               if re.match(r"(error|warning): |\[rank \d+\] error|serving ", line)]
    return sorted(set(quoted))


def test_every_quoted_message_is_known():
    quoted = quoted_messages()
    assert len(quoted) >= 20
    for q in quoted:
        keys = [k for k in MESSAGES if k in q]
        assert keys, f"the troubleshooting guide quotes {q!r}: add its fragments to MESSAGES"
        for k in keys:
            found = [f for f in MESSAGES[k] if f.strip(" :;") in q]
            # a quote shortened with "…" keeps some of the fragments; a full quote keeps them all
            assert found if "…" in q else len(found) == len(MESSAGES[k]), (q, set(MESSAGES[k]) - set(found))


@pytest.mark.parametrize("key", list(MESSAGES))
def test_every_quoted_message_is_still_in_the_code(key):
    code = source_literals()
    for fragment in MESSAGES[key]:
        assert fragment in code, f"{fragment!r} ({key}) is no longer in the code: update the troubleshooting guide"


@pytest.mark.parametrize("argv, env, shown", [
    (["serve", "--host", "0.0.0.0"], {}, "error: refusing to listen on 0.0.0.0 without --api-key"),
    (["tokenizer", "encode", "hi"], {}, "error: no tokenizer at BASE/tokenizer; train one with"),
    (["pretrain", "--config", "examples/cpu_demo.toml"], {"RANK": "0"}, "error: found RANK but not all of"),
])
def test_quick_errors_are_printed_as_the_guide_quotes_them(tmp_path, argv, env, shown):
    import os
    full = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(REPO), "MINI_NANOCHAT_BASE_DIR": str(tmp_path), **env}
    for v in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        if v not in env:
            full.pop(v, None)
    r = subprocess.run([PY, "-m", "mini_nanochat", *argv], cwd=REPO, env=full, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    line = r.stderr.strip().splitlines()[-1].replace(str(tmp_path), "BASE")
    quoted = [q for q in (q.replace("/tmp/base-guides-b/empty", "BASE") for q in quoted_messages()) if q.startswith(shown)]
    assert quoted == [line], (quoted, line)
