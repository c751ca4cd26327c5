"""Shown output is true, for the four core guides in docs/start/ (tokenization, architecture,
training pipeline, inference): their deterministic commands and code blocks are run and compared
with what the guides show, using the helpers of tests/test_lesson_outputs.py.

The guides ran their commands with MINI_NANOCHAT_BASE_DIR=/tmp/mnc-guide; the tests run them in a
private base directory and replace that path. Commands that need no data (the model calculator,
the plan, the sampler, the guides' small scripts) are fast. Those that need the embedded corpus
and the demo's tokenizer share one module fixture that builds them (a minute or two on 2 cores):
marked slow. Training output (losses, samples, timings) is measured, not fixed: the training
guide's run is checked through its deterministic startup lines (`--plan`), and the inference
guide's scripts on a short run of their own only where the result does not depend on the
trained weights (the forced tool tokens, cached == naive).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.test_lesson_outputs import CLI, REPO, assert_shown, demo_base, run, shown_block  # noqa: F401

GUIDE_BASE = "/tmp/mnc-guide"
TOK = "docs/start/tokenization.md"
ARCH = "docs/start/architecture.md"
TRAIN = "docs/start/training-pipeline.md"
INFER = "docs/start/inference.md"


def shown_code(doc: str, after: str) -> str:
    """The first ```python block after the line containing ``after``."""
    text = (REPO / doc).read_text(encoding="utf-8")
    start = text.index(after)
    body = text[text.index("```python\n", start) + len("```python\n"):]
    return body[:body.index("\n```")] + "\n"


def run_code(code: str, tmp_path: Path, base: Path | None = None) -> str:
    script = tmp_path / "guide_script.py"
    script.write_text(code, encoding="utf-8")
    return run([sys.executable, str(script)], base)


def block_after_command(doc: str, command: str) -> list[str]:
    """The lines of the ```text block that starts with ``$ command``, after that line."""
    text = (REPO / doc).read_text(encoding="utf-8")
    head = "```text\n$ " + command + "\n"
    assert text.count(head) == 1, f"{doc} has {text.count(head)} text blocks starting with $ {command}"
    body = text[text.index(head) + len(head):]
    return body[:body.index("\n```")].splitlines()


def guide_cmd(command: str) -> list[str]:
    """A command as the guides write it, as an argv for this interpreter (quotes honoured)."""
    import shlex
    argv = shlex.split(command)
    if argv[0] == "mini-nanochat":
        return [*CLI, *argv[1:]]
    assert argv[0] == "python", command
    return [sys.executable, *argv[1:]]


# --------------------------------------------------------------------------- fast: no data needed

def test_architecture_plan_is_what_the_guide_shows():
    cmd = "mini-nanochat pretrain --config examples/cpu_demo.toml --plan --world-size 1 --vocab-size 8192"
    assert_shown(block_after_command(ARCH, cmd), run(guide_cmd(cmd)))


@pytest.mark.parametrize("cmd", [
    "python tools/model_calculator.py --compare d12 d20 d24 d26",
    "python tools/model_calculator.py --preset d20",
    "python tools/model_calculator.py --preset d20 --n-kv-head 5",
    "python tools/model_calculator.py --preset cpu-demo --no-value-embeds --no-resid-scalars",
])
def test_architecture_calculator_is_what_the_guide_shows(cmd):
    assert_shown(block_after_command(ARCH, cmd), run(guide_cmd(cmd) + ["--no-color"]))


def test_architecture_rope_script_prints_what_the_guide_shows(tmp_path):
    out = run_code(shown_code(ARCH, "save as `rope.py`"), tmp_path)
    assert_shown(shown_block(ARCH, "for t_q, t_k in [(5, 2)"), out)


def test_tokenization_toy_bpe_prints_what_the_guide_shows(tmp_path):
    out = run_code(shown_code(TOK, "save as `toy_bpe.py`"), tmp_path)
    assert_shown(shown_block(TOK, "It prints:"), out)


def test_inference_sampler_demo_is_what_the_guide_shows():
    out = run([sys.executable, "-m", "phases.phase1_transformer.sampling"])
    assert_shown(shown_block(INFER, "(`python -m phases.phase1_transformer.sampling`)"), out)


def test_inference_kv_cache_sizes_are_what_the_guide_shows():
    first = "python tools/model_calculator.py --preset cpu-demo --no-value-embeds --no-resid-scalars --batch 8 --dtype fp32"
    second = "python tools/model_calculator.py --preset d20"
    shown = block_after_command(INFER, first)
    split = shown.index("$ " + second)
    assert_shown(shown[:split], run(guide_cmd(first) + ["--no-color"]))
    assert_shown(shown[split + 1:], run(guide_cmd(second) + ["--no-color"]))


def test_training_guide_startup_lines_are_what_the_plan_derives():
    """The guide's run printed its plan before training; --plan derives the same lines."""
    shown = shown_block(TRAIN, "It stops after step 6")
    assert shown[0].startswith("$ mini-nanochat pretrain --config examples/cpu_demo.toml --run-name guide ")
    plan = shown[shown.index("model (from the depth dial):"):shown.index("step     0 | val bpb 3.3896")]
    out = run([*CLI, "pretrain", "--config", "examples/cpu_demo.toml", "--num-iterations", "12",
               "--device-batch-size", "4", "--set", "warmup_steps=3", "--plan", "--world-size", "1",
               "--vocab-size", "8192"])
    assert_shown(plan, out)


def test_training_guide_listing_is_the_optimizer_step():
    """The loop the guide walks through is the marked section of train.py (docs/snippets.py keeps it)."""
    text = (REPO / TRAIN).read_text(encoding="utf-8")
    assert "<!-- include: phases/phase2_training/train.py:optimizer_step -->" in text
    for needle in ("for micro in range(plan.grad_accum):", "loss.backward()", "optimizer.step()"):
        assert needle in text


# --------------------------------------------------------------------------- slow: corpus + tokenizer

@pytest.mark.slow
@pytest.mark.parametrize("cmd", [
    'mini-nanochat tokenizer encode "The tokenizer learns the most frequent pairs."',
    'mini-nanochat tokenizer encode "naïve café 🙂 日本"',
])
def test_tokenization_encode_is_what_the_guide_shows(demo_base, cmd):
    base, _, _ = demo_base
    assert_shown(block_after_command(TOK, cmd), run(guide_cmd(cmd) + ["--no-color"], base))


@pytest.fixture(scope="module")
def tiny_tokenizer(demo_base):
    base, _, _ = demo_base
    cmd = f"mini-nanochat tokenizer train --vocab-size 300 --max-chars 1000000 --out {GUIDE_BASE}/tok300"
    out = run([*CLI, "tokenizer", "train", "--vocab-size", "300", "--max-chars", "1000000",
               "--out", str(base / "tok300")], base)
    return base, cmd, out


@pytest.mark.slow
def test_tokenization_tiny_tokenizer_is_what_the_guide_shows(tiny_tokenizer):
    base, cmd, out = tiny_tokenizer
    assert_shown(block_after_command(TOK, cmd), out, {GUIDE_BASE: str(base)})


@pytest.mark.slow
@pytest.mark.parametrize("cmd", [
    f"python tools/tokenizer_playground.py --tokenizer {GUIDE_BASE}/tok300 --vocab",
    f'python tools/tokenizer_playground.py --tokenizer {GUIDE_BASE}/tok300 --against {GUIDE_BASE}/tokenizer '
    '"The tokenizer learns the most frequent pairs."',
    'python tools/tokenizer_playground.py --merges " frequent"',
    "python tools/tokenizer_playground.py --special",
    "python tools/tokenizer_playground.py --chat",
])
def test_tokenization_playground_is_what_the_guide_shows(tiny_tokenizer, cmd):
    base, _, _ = tiny_tokenizer
    argv = guide_cmd(cmd.replace(GUIDE_BASE, str(base))) + ["--no-color"]
    assert_shown(block_after_command(TOK, cmd), run(argv, base), {GUIDE_BASE: str(base)})


@pytest.mark.slow
def test_tokenization_eval_table_is_what_the_guide_shows(demo_base):
    base, _, _ = demo_base
    assert_shown(block_after_command(TOK, "mini-nanochat tokenizer eval"), run([*CLI, "tokenizer", "eval"], base))


@pytest.mark.slow
def test_tokenization_two_encoders_agree_as_the_guide_shows(demo_base, tmp_path):
    """Same ids on both paths, and the same counts as shown when the Python is the guide's (the text
    encoded is this Python's argparse.py); the timings are measured and only compared in shape."""
    base, _, _ = demo_base
    out = run_code(shown_code(TOK, "save as\n`two_encoders.py`"), tmp_path, base)
    shown = shown_block(TOK, "On our machine (Python 3.11.7")
    assert "same ids: True" in out.splitlines()
    if sys.version.split()[0] == "3.11.7":
        assert_shown(shown, out)
    else:
        counts = [re.sub(r"[\d,.]+", "N", line) for line in shown]
        assert_shown(counts, re.sub(r"[\d,.]+", "N", out))


@pytest.mark.slow
def test_attention_visualizer_masks_are_what_the_guide_shows(demo_base):
    """The map's weights come from a random initialisation (floating point may differ between
    machines); its blank cells, the causal mask and the window, may not."""
    base, _, _ = demo_base
    cmd = ('python tools/attention_visualizer.py --window-pattern SL --window 3 --layer 0 --head 0 '
           '"The cat sat on the mat."')
    shown = block_after_command(ARCH, cmd)
    out = run(guide_cmd(cmd) + ["--no-color"], base)
    assert shown[0] in out.splitlines()

    def cells(lines: list[str]) -> list[str]:
        rows = [line for line in lines if re.match(r"^\s+\d+\s+\S+ .*max \d", line)]
        assert rows, lines
        # columns start after the label; 2 characters per key; blank = masked
        start = lines[[i for i, line in enumerate(lines) if "<- key" in line][0]].index("0 1")
        return ["".join("." if row[start + 2 * k:start + 2 * k + 2].strip() else " " for k in range(len(rows)))
                for row in rows]

    assert cells(shown) == cells(out.splitlines())


@pytest.mark.slow
def test_training_guide_loader_batch_is_what_the_guide_shows(demo_base):
    base, _, _ = demo_base
    out = run([sys.executable, "-m", "phases.phase5_data.loader"], base)
    assert_shown(block_after_command(TRAIN, "python -m phases.phase5_data.loader"), out)


# --------------------------------------------------------------------------- slow: a short run

@pytest.fixture(scope="module")
def short_run(demo_base):
    """A 4-step run of the demo's model: the guide's scripts need a checkpoint, not a good one."""
    base, _, _ = demo_base
    run([*CLI, "pretrain", "--config", "examples/cpu_demo.toml", "--run-name", "guide_check",
         "--num-iterations", "4", "--set", "warmup_steps=1", "--set", "eval_tokens=4096",
         "--set", "sample_tokens=4"], base)
    return base


@pytest.mark.slow
def test_inference_cache_script_gives_the_naive_tokens(short_run, tmp_path):
    code = shown_code(INFER, "save as `kv_cache_check.py`").replace("cpu_demo_30steps", "guide_check")
    out = run_code(code, tmp_path, short_run)
    assert re.search(r"^same tokens: True \(\d+ tokens, (stop|length)\)$", out, re.M), out


@pytest.mark.slow
def test_inference_tool_call_is_forced_as_the_guide_shows(short_run, tmp_path):
    code = shown_code(INFER, "save as `tool_call.py`").replace("cpu_demo_30steps", "guide_check")
    out = run_code(code, tmp_path, short_run)
    shown = shown_block(INFER, "drives the engine's step interface")
    forced = [line for line in shown if line.startswith("forced")]
    assert len(forced) == 8
    assert out.splitlines()[:8] == forced           # what the sampled tokens are depends on the weights
    assert all(line.startswith("sampled") for line in out.splitlines()[8:]), out


@pytest.mark.slow
def test_training_guide_losses_script_reads_a_run(short_run, tmp_path):
    """The guide's `losses.py` on a run compared with itself: a row per step, identical."""
    script = tmp_path / "losses.py"
    script.write_text(shown_code(TRAIN, "save as `losses.py`"), encoding="utf-8")
    lines = run([sys.executable, str(script), "guide_check", "guide_check"], short_run).splitlines()
    assert lines[0].split() == ["step", "lrm", "guide_check", "guide_check"]
    assert [line.split()[0] for line in lines[1:-1]] == ["1", "2", "3", "4"]
    assert lines[-1] == "identical losses: True"
