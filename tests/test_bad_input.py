"""Bad input through the real command line: one representative case of every class of issue 15.

Each case runs ``python -m mini_nanochat …`` or ``python tools/….py …`` in a subprocess, as a
careless or hostile user would, and asserts: the documented exit status (2 for a usage error,
1 where a tool documents 1 for "found problems"), one ``error:`` line naming what is wrong, no
``Traceback``, and a time bound (no hang, no minutes of work before the error).

The cases are built on a tiny world made once for the module: a vocab-512 tokenizer, a small
corpus, and a folder of broken shards, JSON and checkpoints.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

# Import the training modules now, at collection: their ``out=sys.stdout`` defaults are bound at
# import, and a first import inside a capsys test below bound a capture that is closed afterwards,
# which broke later phase tests of the same session (tests/ collected before phases/).
import mini_nanochat.cli  # noqa: F401,E402

ROOT = Path(__file__).resolve().parent.parent
TIME_BOUND = 60        # seconds: generous for a loaded 2-core machine; every case takes a few


@pytest.fixture(scope="module")
def w(tiny_tokenized, tmp_path_factory):
    """Paths the cases refer to as {name}."""
    root = tmp_path_factory.mktemp("bad_input")
    bad = root / "bad"
    bad.mkdir()
    paths = {"tok": tiny_tokenized["tokenizer_dir"], "data": tiny_tokenized["data_dir"], "bad": str(bad),
             "base": str(root / "base")}
    good = sorted(Path(paths["data"]).glob("shard_*.parquet"))[0].read_bytes()

    def shard_folder(name: str, write) -> None:
        (bad / name).mkdir()
        write(bad / name / "shard_00000.parquet")
        (bad / name / "shard_00001.parquet").write_bytes(good)      # a valid validation shard beside it
        paths[name] = str(bad / name)

    shard_folder("zero_bytes", lambda p: p.write_bytes(b""))
    shard_folder("truncated", lambda p: p.write_bytes(good[: len(good) // 2]))
    shard_folder("not_parquet", lambda p: p.write_text("text,hello\n"))
    shard_folder("wrong_column", lambda p: pq.write_table(pa.table({"body": ["a", "b"]}), p))
    shard_folder("int_column", lambda p: pq.write_table(pa.table({"text": [1, 2]}), p))
    shard_folder("null_text", lambda p: pq.write_table(pa.table({"text": pa.array(["a", None], pa.string())}), p))
    shard_folder("zero_rows", lambda p: pq.write_table(pa.table({"text": pa.array([], pa.string())}), p))
    shard_folder("shard_is_dir", lambda p: p.mkdir())
    (bad / "a_file").write_text("I am a file")
    (bad / "a_dir.png").mkdir()
    (bad / "deep.jsonl").write_text("[" * 100_000 + "\n")
    (bad / "deep.json").write_text("[" * 100_000)
    (bad / "binary.jsonl").write_bytes(bytes(range(128, 256)) * 8)
    (bad / "empty.jsonl").write_text("")
    (bad / "huge_int.toml").write_text("[model]\ndepth = 99999999999999999999999\n")
    (bad / "toklist").mkdir()
    (bad / "toklist" / "tokenizer.json").write_text("[1, 2]")
    step = bad / "run" / "checkpoints" / "step_000001"
    step.mkdir(parents=True)
    (step / "meta.json").write_text("[1]")
    (bad / "run" / "metrics.jsonl").write_text('{"event": "step", "step": 1, "loss": 5.0, "smooth_loss": 5.0}\n')
    paths["broken_run"] = str(bad / "run")
    return paths


T = "--set tokenizer_dir={tok} --set data_dir={data}"
CASES = [
    # (id, argv ({name} = a path of the tiny world), exit status, text the error line must hold)
    # 4: non-UTF-8 input is its bytes (checked for output below)
    ("encode-invalid-utf8", "cli tokenizer encode \udced\udca0\udc80 --tokenizer {tok} --ids-only", 0, None),
    # 5: broken shards, one reader and one set of errors
    ("train-zero-byte-shard", "cli tokenizer train --data {zero_bytes} --vocab-size 300 --out {bad}/t", 2, "empty"),
    ("train-truncated-shard", "cli tokenizer train --data {truncated} --vocab-size 300 --out {bad}/t", 2,
     "not a readable parquet file"),
    ("train-not-parquet", "cli tokenizer train --data {not_parquet} --vocab-size 300 --out {bad}/t", 2,
     "not a readable parquet file"),
    ("train-wrong-column", "cli tokenizer train --data {wrong_column} --vocab-size 300 --out {bad}/t", 2, "text"),
    ("train-int-column", "cli tokenizer train --data {int_column} --vocab-size 300 --out {bad}/t", 2, "text"),
    ("train-null-text", "cli tokenizer train --data {null_text} --vocab-size 300 --out {bad}/t", 2, "null"),
    ("train-zero-rows", "cli tokenizer train --data {zero_rows} --vocab-size 300 --out {bad}/t", 2, "0 rows"),
    ("train-shard-is-dir", "cli tokenizer train --data {shard_is_dir} --vocab-size 300 --out {bad}/t", 2,
     "shard_00000.parquet"),
    ("eval-truncated-shard", "cli tokenizer eval --tokenizer {tok} --data {truncated}", 2, "not a readable parquet"),
    ("inspector-zero-rows", "tool dataset_inspector.py {zero_rows}", 1, None),
    ("pretrain-truncated-shard", "cli pretrain --set tokenizer_dir={tok} --set data_dir={truncated}", 2,
     "not a readable parquet"),
    # 7: nonsense numbers are errors, only -1 derives
    ("iterations-0", "cli pretrain --num-iterations 0", 2, "num_iterations must be >= 1"),
    ("total-batch-minus-7", "cli pretrain --total-batch-size -7", 2, "total_batch_size must be >= 1"),
    ("warmup-minus-10", "cli pretrain --set warmup_steps=-10", 2, "warmup_steps must be >= 0"),
    # 8: output paths that are files or folders, checked before the work
    ("train-out-is-file", "cli tokenizer train --data {data} --vocab-size 300 --out {bad}/a_file", 2, "a_file"),
    ("pretrain-run-dir-is-file", f"cli pretrain --run-dir {{bad}}/a_file {T}", 2, "a_file"),
    ("pretrain-config-is-dir", "cli pretrain --config {bad}", 2, "is a folder"),
    ("embedded-out-is-file", "cli data embedded --out {bad}/a_file", 2, "a_file"),
    ("download-out-is-file", "cli data download -n 1 --out {bad}/a_file", 2, "a_file"),
    ("inspector-export-is-dir", "tool dataset_inspector.py {data} --export {bad}", 2, "--export"),
    ("attention-html-is-dir", "tool attention_visualizer.py Hello --html {bad}", 2, "--html"),
    ("dashboard-png-is-dir", "tool training_dashboard.py {broken_run} --png {bad}/a_dir.png", 2, "a_dir.png"),
    # 9: huge numbers: refused with the figure, at once
    ("pretrain-depth-100000", f"cli pretrain --depth 100000 {T}", 2, "parameters"),
    ("pretrain-depth-300-does-not-fit", f"cli pretrain --depth 300 {T}", 2, "choose a smaller --depth"),
    ("toml-int-beyond-64-bits", "cli pretrain --config {bad}/huge_int.toml", 2, "64 bits"),
    ("seed-1e23", "cli pretrain --seed 100000000000000000000000", 2, "seed"),
    ("calculator-depth-1e8", "tool model_calculator.py --depth 100000000", 2, "parameters"),
    # 10: corrupt files, devices, leftovers
    ("tokenizer-json-list", "cli tokenizer encode hi --tokenizer {bad}/toklist", 2, "corrupt tokenizer file"),
    ("inspector-deep-jsonl", "tool dataset_inspector.py {bad}/deep.jsonl --validate", 1, None),
    ("playground-deep-json", "tool tokenizer_playground.py --chat {bad}/deep.json --tokenizer {tok}", 2,
     "nested too deeply"),
    ("playground-against-no-tokenizer", "tool tokenizer_playground.py hi --against {bad}", 2, "--against"),
    ("device-tpu", f"cli pretrain --device tpu {T}", 2, "tpu"),
    ("tokenizer-threads-0", f"cli pretrain --set tokenizer_threads=0 {T}", 2, "tokenizer_threads must be >= 1"),
    ("browser-inspect-broken", "tool checkpoint_browser.py inspect {broken_run}/checkpoints/step_000001", 2,
     "meta.json"),
    # 12: sizes that cannot be met are said
    ("calculator-mlp-ratio-0", "tool model_calculator.py --mlp-ratio 0", 2, "mlp_ratio"),
    # the fresh attack (issue 15's note): Phase 6-9 surfaces; each was a traceback, a hang or silently accepted
    ("template-show-deep-jsonl", "tool template_builder.py --tokenizer {tok} show {bad}/deep.jsonl", 2,
     "nested too deeply"),
    ("template-show-binary", "tool template_builder.py --tokenizer {tok} show {bad}/binary.jsonl", 2, "not UTF-8"),
    ("template-show-folder", "tool template_builder.py --tokenizer {tok} show {bad}", 2, "is a folder"),
    ("template-check-empty-file", "tool template_builder.py --tokenizer {tok} check {bad}/empty.jsonl", 2,
     "holds no conversation"),                            # was "0 of 0 conversations pass", exit 0
    ("template-jinja-out-under-a-file", "tool template_builder.py jinja --out {bad}/a_file/x", 2, "a_file"),
    ("generate-logprobs-without-json", "cli generate hi --run {bad}/none --logprobs", 2, "--logprobs needs --json"),
    ("generate-temperature-inf", "cli generate hi --run {bad}/none --temperature inf", 2, "finite"),
    ("chat-max-tokens-0", "cli chat -p hi --max-tokens 0", 2, "--max-tokens"),
    ("serve-context-0", "cli serve --context 0", 2, "--context"),
    ("serve-port-99999", "cli serve --port 99999", 2, "--port 99999 is out of range"),
    ("serve-public-host-without-key", "cli serve --host 0.0.0.0", 2, "without --api-key"),
    ("quiz-42", "cli quiz 42", 2, "phases are numbered 0-9"),
    ("eval-bundle-sha-not-hex", "cli eval base --run {bad}/none --bundle-sha256 zz", 2, "64 hexadecimal"),
    ("eval-sandbox-timeout-negative", "cli eval chat --run {bad}/none --sandbox-timeout -1", 2, "--sandbox-timeout"),
    ("rl-negative-kl", "cli rl --set beta=-0.1", 2, "beta must be >= 0"),
    ("rl-temperature-0", "cli rl --set temperature=0", 2, "temperature must be > 0"),
    ("sft-eval-max-tokens-0", "cli sft --set eval_max_tokens=0", 2, "eval_max_tokens must be >= 1"),
    ("embedded-out-under-a-file", "cli data embedded --out {bad}/a_file/x", 2, "a_file"),
    ("explorer-top-p-2", "tool generation_explorer.py hi --top-p 2 --tokenizer {tok}", 2, "top_p"),
    ("explorer-negative-steps", "tool generation_explorer.py hi --steps -1", 2, "--steps"),
    ("explorer-device-tpu", "tool generation_explorer.py hi --device tpu", 2, "tpu"),
    ("explorer-plot-under-a-file", "tool generation_explorer.py hi --plot {bad}/a_file/x.png", 2, "a_file"),
    ("serve-temperature-negative", "cli serve --temperature -1", 2, "temperature"),
    ("generate-top-k-beyond-64-bits", "cli generate hi --run {bad}/none --top-k 100000000000000000000", 2, "2^63"),
    ("pretrain-set-and-flag-disagree", "cli pretrain --set depth=abc --depth 2", 2, "given twice"),
]


def run(argv: list[str], env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1", **(env or {})}
    t = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, timeout=TIME_BOUND * 2)
    return proc, time.perf_counter() - t


def command(spec: str, w: dict) -> list[str]:
    kind, *rest = spec.split(" ")
    args = [a.format(**w) for a in rest]
    return ([sys.executable, "-m", "mini_nanochat", "--no-progress", *args] if kind == "cli"
            else [sys.executable, str(ROOT / "tools" / rest[0]), *args[1:]])


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_error(case, w):
    name, spec, status, needle = case
    argv = [os.fsencode(a) for a in command(spec, w)]      # surrogateescape: the raw bytes a shell passes
    proc, seconds = run(argv, env={"MINI_NANOCHAT_BASE_DIR": w["base"]})
    err = proc.stderr.decode("utf-8", "replace")
    out = proc.stdout.decode("utf-8", "replace")
    assert "Traceback" not in err, err[-3000:]
    assert proc.returncode == status, f"exit {proc.returncode}\n{err[-2000:]}\n{out[-1000:]}"
    assert seconds < TIME_BOUND, f"{seconds:.0f}s"
    if status == 2:
        errors = [line for line in err.splitlines() if "error:" in line]
        assert len(errors) == 1, err
        assert needle in errors[0], errors[0]
    if name == "encode-invalid-utf8":
        assert out.split() == ["237", "160", "128"]          # 3 bytes -> 3 byte tokens
    if status == 1:
        assert "cannot be used" in out or "problem" in out


@pytest.mark.parametrize("argv", [["data", "embedded", "--out", ""], ["tokenizer", "train", "--out", ""],
                                  ["pretrain", "--run-dir", ""]])
def test_an_empty_output_path_is_not_the_current_folder(argv, capsys, tmp_path, monkeypatch):
    """Fresh attack: Path("") is ".", so --out "" built the corpus into wherever the user stood."""
    from mini_nanochat.cli import main
    monkeypatch.setenv("MINI_NANOCHAT_BASE_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and "expected a path, got an empty string" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []                    # nothing written




def test_template_new_with_closed_input_is_one_error(w):
    """Fresh attack: `template_builder.py new` with stdin at its end gave an EOFError traceback."""
    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "template_builder.py"), "--tokenizer", w["tok"], "new"],
                          input=b"", capture_output=True, env=env, cwd=ROOT, timeout=TIME_BOUND)
    assert proc.returncode == 2 and b"the input ended" in proc.stderr and b"Traceback" not in proc.stderr


def test_vocab_size_is_checked_before_the_corpus_is_built(tmp_path):
    """Issue 14 #9: no minute of corpus building before 'vocab_size must be at least 265'."""
    proc, seconds = run([sys.executable, "-m", "mini_nanochat", "tokenizer", "train", "--vocab-size", "100"],
                        env={"MINI_NANOCHAT_BASE_DIR": str(tmp_path)})
    assert proc.returncode == 2 and b"vocab_size must be at least 265" in proc.stderr
    assert not (tmp_path / "data").exists()                 # nothing was built


def test_an_unreachable_vocab_size_is_said(w):
    proc, _ = run([sys.executable, "-m", "mini_nanochat", "--no-progress", "tokenizer", "train", "--data", w["data"],
                   "--vocab-size", "100000000000", "--out", w["bad"] + "/huge_vocab"])
    assert proc.returncode == 0 and b"vocab_size 100,000,000,000 was not reached" in proc.stdout


def test_a_config_file_error_names_the_key(w, tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[optim]\nwarmup_steps = -3\n")
    proc, _ = run([sys.executable, "-m", "mini_nanochat", "pretrain", "--config", str(path)])
    assert proc.returncode == 2 and b"warmup_steps must be >= 0, got -3" in proc.stderr


@pytest.mark.parametrize("argv, message", [
    (["--num-iterations", "-5"], "num_iterations must be >= 1, or -1 to derive it, got -5"),
    (["--set", "save_every=-1"], "save_every must be >= 0"),
    (["--set", "keep_last=-1"], "keep_last must be >= 0"),
    (["--set", "eval_every=-1"], "eval_every must be >= 0"),
    (["--set", "max_seconds=-5"], "max_seconds must be >= 0"),
    (["--set", "log_every=0"], "log_every must be >= 1"),
    (["--set", "eval_tokens=0"], "eval_tokens must be >= 1"),
    (["--set", "adam_beta2=1.5"], "adam_beta2 must be in [0, 1)"),
    (["--set", "matrix_lr=nan"], "matrix_lr must be a finite number"),
    (["--set", "grad_sync=psychic"], "grad_sync must be"),
    (["--set", "dist_timeout=0"], "dist_timeout must be > 0"),
    (["--set", "doc_buffer=0"], "doc_buffer must be >= 1"),
    (["--set", "run_name=../x"], "run_name must be a folder name"),
])
def test_every_out_of_range_setting_is_refused_in_process(argv, message, capsys, tmp_path, monkeypatch):
    """The rest of class 7 without a subprocess each: the same check_config, through the same CLI."""
    from mini_nanochat.cli import main
    monkeypatch.setenv("MINI_NANOCHAT_BASE_DIR", str(tmp_path))
    assert main(["pretrain", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


def test_run_command_turns_panics_and_warnings_into_one_line(capsys):
    """A Rust panic (a BaseException) is one error line, status 1; a warning is 'warning: …',
    without Python's file:line and source line (issue 15 #2)."""
    import warnings

    from phases.common.console import run_command
    PanicException = type("PanicException", (BaseException,), {})

    def panics():
        raise PanicException("stack overflow in regex")
    assert run_command(panics) == 1
    assert capsys.readouterr().err.startswith("error: a native library failed on this input")

    def warns():
        warnings.warn("skipping bad checkpoint: step_000008", UserWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = warnings._showwarning_orig     # as outside pytest: printed, not recorded
        warnings._showwarnmsg_impl = lambda msg: sys.stderr.write(warnings._formatwarnmsg(msg))
        assert run_command(warns) == 0
    assert capsys.readouterr().err == "warning: skipping bad checkpoint: step_000008\n"

    def too_big():                                          # numpy's "Unable to allocate 191 GiB" is a MemoryError
        raise MemoryError("Unable to allocate 191. GiB for an array")
    assert run_command(too_big) == 1
    assert capsys.readouterr().err.startswith("error: out of memory (Unable to allocate 191. GiB")

    def bug():
        raise ZeroDivisionError
    with pytest.raises(ZeroDivisionError):                  # a bug keeps its traceback
        run_command(bug)
