"""Tests of tools/training_resume_helper.py and tools/checkpoint_browser.py on a real (tiny) run.

One 12-step run (checkpoints at steps 4, 8 and 12) is trained once for the module; tests that
damage, resume or delete work on copies of it. The tools are scripts (``tools`` is not a
package), so they are loaded by path. The key test runs the resume command the helper prints,
in a subprocess, and checks that it really continues the run to the same final weights.
"""
from __future__ import annotations

import io
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
from _tools import load_tool

from phases.phase2_training.checkpoint import check_checkpoint, latest_checkpoint, load_weights
from mini_nanochat.pretrain import PretrainConfig, load_config
from phases.phase2_training.schedule import lr_multiplier

ROOT = Path(__file__).resolve().parent.parent


rh = load_tool("training_resume_helper")
cb = load_tool("checkpoint_browser")


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_tokenized):
    """A vocab-512 tokenizer, a tiny corpus and a finished 12-step run named 'tiny' under <base>/runs,
    trained the way `mini-nanochat pretrain` trains (MuonAdamW, the packed loader)."""
    from mini_nanochat.pretrain import pretrain as train
    root = tmp_path_factory.mktemp("resume_tools")
    mp = pytest.MonkeyPatch()
    mp.setenv("MINI_NANOCHAT_BASE_DIR", str(root / "base"))
    cfg = PretrainConfig(depth=2, aspect_ratio=32, head_dim=32, sequence_len=32, device_batch_size=4,
                      total_batch_size=128, num_iterations=12, warmdown_ratio=0.5, final_lr_frac=0.05, warmup_steps=2, save_every=4, eval_every=4, eval_tokens=2048, keep_last=3,
                      sample_tokens=4, peak_flops=1e12, matrix_lr=0.01, data_dir=tiny_tokenized["data_dir"],
                      tokenizer_dir=tiny_tokenized["tokenizer_dir"], run_name="tiny")
    result = train(cfg, show_progress=False, out=io.StringIO())
    yield {"root": root, "runs": root / "base" / "runs", "run": result.run_dir, "cfg": cfg, "result": result}
    mp.undo()


def _copy(world, name: str) -> Path:
    dst = world["runs"] / name
    shutil.copytree(world["run"], dst)
    return dst


def _run(module, argv, capsys) -> tuple[int, str, str]:
    code = module.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _n_params(meta: dict) -> int:
    from phases.phase1_transformer.config import GPTConfig
    from phases.phase1_transformer.model import GPT
    return GPT.build(GPTConfig.from_dict(meta["model_config"])).param_counts()["total"]


# -- the resume helper --------------------------------------------------------------------------------
def test_latest_valid_checkpoint_of_a_finished_run(world, capsys):
    code, out, _ = _run(rh, ["tiny", "--json"], capsys)  # a run name under <base>/runs
    rep = json.loads(out)
    assert code == 0 and [c["step"] for c in rep["checkpoints"]] == [4, 8, 12]
    assert all(c["ok"] for c in rep["checkpoints"])
    lv = rep["latest_valid"]
    assert lv["step"] == 12 and lv["hashed"] == ["model.safetensors", "optim.pt"]
    meta = json.loads((world["run"] / "checkpoints" / "step_000012" / "meta.json").read_text())
    assert lv["values"] == _n_params(meta) and lv["val_bpb"] == world["result"].val_bpb
    assert lv["file_bytes"] == (world["run"] / "checkpoints" / "step_000012" / "model.safetensors").stat().st_size
    assert rep["schedule"]["phase"] == "finished" and "resume" not in rep
    assert rep["progress"]["tokens"] == 12 * 128 and rep["lost"]["steps"] == 0
    code, out, _ = _run(rh, [world["run"] / "checkpoints" / "step_000004"], capsys)  # any path inside the run
    assert code == 0 and "latest valid: step 12" in out and "the run is finished" in out
    assert "\x1b[" not in out  # plain when not on a terminal


def test_a_corrupt_file_is_named_and_the_helper_falls_back(world, capsys):
    run = _copy(world, "corrupt")
    ckpts = run / "checkpoints"
    weights = ckpts / "step_000012" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF  # one flipped bit pattern inside a tensor: same size, valid header
    weights.write_bytes(bytes(data))
    (ckpts / "step_000016.tmp-x1y2").mkdir()  # what a kill during a save leaves
    code, out, _ = _run(rh, [run], capsys)
    assert code == 0
    assert "model.safetensors: sha256 mismatch" in out and "latest valid: step 8" in out
    assert "step_000016.tmp-x1y2" in out and "incomplete" in out
    with pytest.warns(UserWarning, match="skipping bad checkpoint"):
        assert latest_checkpoint(ckpts).step == 8  # the training loop agrees with the helper
    rep = rh.analyse(run, fast=True)  # --fast reads headers only: a flipped data byte passes
    assert rep["latest_valid"]["step"] == 12
    with open(weights, "r+b") as f:
        f.truncate(len(data) - 100)
    rep = rh.analyse(run, fast=True)  # ... but a truncated file never does
    bad = next(c for c in rep["checkpoints"] if c["step"] == 12)
    assert "truncated" in bad["problems"][0] and rep["latest_valid"]["step"] == 8
    (ckpts / "step_000008" / "optim.pt").unlink()
    rep = rh.analyse(run, fast=True)
    assert rep["latest_valid"]["step"] == 4
    assert "optim.pt is missing" in next(c for c in rep["checkpoints"] if c["step"] == 8)["problems"]


def test_schedule_position_matches_lr_multiplier_and_the_log(world):
    tc = json.loads((world["run"] / "checkpoints" / "step_000012" / "meta.json").read_text())["train_config"]
    phases = []
    for step in range(13):
        pos = rh.schedule_position(tc, step)
        phases.append(pos["phase"])
        if step < 12:
            assert pos["multiplier"] == lr_multiplier(step, 12, tc["warmup_steps"], tc["warmdown_ratio"],
                                                      tc["final_lr_frac"])
            assert pos["lrs"]["matrix"] == pytest.approx(tc["matrix_lr"] * pos["multiplier"])
        assert {"constant": pos["multiplier"] == 1.0, "warmdown": pos["multiplier"] < 1.0}.get(pos["phase"], True)
    assert phases == ["warmup"] * 2 + ["constant"] * 5 + ["warmdown"] * 5 + ["finished"]
    for r in rh.read_metrics(world["run"]):  # the lrm the loop logged after step s+1 is that of step s
        if r["event"] == "step":
            assert r["lrm"] == rh.schedule_position(tc, r["step"] - 1)["multiplier"]


def test_the_printed_resume_command_really_resumes_the_run(world, capsys):
    run = world["root"] / "interrupted"
    shutil.copytree(world["run"], run)
    shutil.rmtree(run / "checkpoints" / "step_000012")  # as if killed between step 8's save and step 12's
    code, out, _ = _run(rh, [run], capsys)
    assert code == 0 and "latest valid: step 8" in out
    assert "next step 8 is in warmdown" in out and "4 step(s)" in out  # the log went on to step 12
    command = out.split("resume with:\n", 1)[1].splitlines()[0].strip()
    argv = shlex.split(command)
    assert argv[:5] == ["mini-nanochat", "pretrain", "--run-dir", str(run), "--resume"]
    # what the --set items rebuild is the saved config (run_dir apart, which --run-dir gives)
    sets = dict(a.split("=", 1) for a in argv[6::2])
    saved = json.loads((run / "checkpoints" / "step_000008" / "meta.json").read_text())["train_config"]
    rebuilt = asdict(load_config(None, sets))
    assert {k: v for k, v in rebuilt.items() if k != "run_dir"} == {k: v for k, v in saved.items() if k != "run_dir"}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "mini_nanochat", *argv[1:]], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "resuming from" in proc.stdout and "step_000008 (step 8)" in proc.stdout
    resumed = latest_checkpoint(run / "checkpoints")
    assert resumed.step == 12
    original = world["run"] / "checkpoints" / "step_000012"
    assert resumed.meta["val_bpb"] == world["result"].val_bpb  # bitwise the same run on CPU float32
    wa, wb = load_weights(original), load_weights(resumed.path)
    assert wa.keys() == wb.keys() and all((wa[k] == wb[k]).all() for k in wa)
    rep = rh.analyse(run)
    assert rep["latest_valid"]["step"] == 12 and rep["lost"]["steps"] == 0


def test_target_steps_extends_a_finished_run(world, capsys):
    code, out, _ = _run(rh, ["tiny", "--target-steps", "20", "--fast", "--json"], capsys)
    rep = json.loads(out)
    assert rep["progress"]["remaining_steps"] == 8 and "--set" in rep["resume"]["argv"]
    assert "num_iterations=20" in rep["resume"]["argv"]
    assert rep["schedule"]["multiplier"] == lr_multiplier(12, 20, 2, 0.5, 0.05)
    assert any("LR schedule" in n for n in rep["notes"])


# -- the checkpoint browser ---------------------------------------------------------------------------
def test_list_shows_checkpoints_with_params_and_val_bpb(world, capsys):
    code, out, _ = _run(cb, ["list", world["run"], "--json"], capsys)
    rows = json.loads(out)
    assert code == 0 and [r["step"] for r in rows] == [4, 8, 12]
    for r in rows:
        meta = json.loads((Path(r["path"]) / "meta.json").read_text())
        assert r["status"] == "ok" and r["val_bpb"] == meta["val_bpb"] and r["params"] == _n_params(meta)
    code, out, _ = _run(cb, ["list", world["run"], "--sort", "bpb"], capsys)
    lines = out.splitlines()
    assert lines[0].split() == ["run", "step", "status", "val", "bpb", "params", "size", "date"]
    assert f"{rows[0]['params']:,}" in lines[2] and f"{world['result'].val_bpb:.4f}" in lines[2]  # best first
    assert "\x1b[" not in out


def test_inspect_tensor_table_matches_the_state_dict(world, capsys):
    code, out, _ = _run(cb, ["inspect", "tiny@8", "--json"], capsys)
    rep = json.loads(out)
    weights = load_weights(world["run"] / "checkpoints" / "step_000008")
    assert code == 0 and rep["step"] == 8 and rep["ok"]
    assert {t["name"]: t["shape"] for t in rep["tensors"]} == {k: list(v.shape) for k, v in weights.items()}
    assert all(t["bytes"] == weights[t["name"]].numel() * 4 and t["dtype"] == "F32" for t in rep["tensors"])
    assert rep["highlights"]["matrix_lr"] == 0.01 and rep["model_config"]["n_layer"] == 2
    code, out, _ = _run(cb, ["inspect", "tiny"], capsys)  # the newest valid checkpoint
    assert "step_000012" in out and "blocks.0.attn.c_q.weight" in out and "64x64" in out
    # issue 14 #10: the packer's buffer as its length, not hundreds of numbers; both losses explained
    data_line = next(line for line in out.splitlines() if line.startswith("data state"))
    assert len(data_line) < 300 and "entries>" in data_line, data_line
    assert "smooth_loss: raw EMA" in out and "train_loss_ema: debiased" in out


def test_compare_reports_weight_change_and_generates_for_both(world, capsys):
    code, out, _ = _run(cb, ["compare", "tiny@4", "tiny@12", "--tokens", "3", "--prompt", "def ", "--json"], capsys)
    rep = json.loads(out)
    assert code == 0 and rep["steps"] == [4, 12] and rep["config_diff"]["train_config"] == {}
    assert rep["weights"]["total_rel_change"] > 0
    assert {"wte", "layer 0", "layer 1", "lm_head"} <= {g["group"] for g in rep["weights"]["groups"]}
    assert rep["prompts"][-1] == "def " and len(rep["generations"]) == 2
    assert all(len(g) == len(rep["prompts"]) and all(isinstance(t, str) for t in g) for g in rep["generations"])
    same = cb.compare_report(Path(rep["a"]), Path(rep["a"]), [], 1, generate=False)
    assert same["weights"]["total_rel_change"] == 0
    code, out, _ = _run(cb, ["compare", "tiny@8", "tiny@12", "--tokens", "2"], capsys)
    assert "A on the left" in out and "prompt 'Return the'" in out and "layer 1" in out


def test_delete_asks_refuses_the_last_valid_one_and_du_measures(world, capsys, monkeypatch):
    run = _copy(world, "deletable")
    monkeypatch.setattr("builtins.input", lambda prompt: "n")
    code, out, _ = _run(cb, ["delete", "deletable@4"], capsys)
    assert code == 1 and "not deleted" in out and (run / "checkpoints" / "step_000004").exists()
    code, out, _ = _run(cb, ["delete", "deletable@4", "--yes"], capsys)
    assert code == 0 and not (run / "checkpoints" / "step_000004").exists()
    code, out, err = _run(cb, ["delete", "deletable"], capsys)  # a bare run is not a checkpoint
    assert code == 2 and "name one checkpoint" in err
    monkeypatch.setattr("builtins.input", lambda prompt: "y")
    assert _run(cb, ["delete", str(run / "checkpoints" / "step_000008")], capsys)[0] == 0
    code, _, err = _run(cb, ["delete", "deletable@12", "--yes"], capsys)
    assert code == 2 and "only valid checkpoint" in err and (run / "checkpoints" / "step_000012").exists()
    code, out, err = _run(cb, ["du", world["runs"]], capsys)
    assert code == 0 and "deletable" in out and "step_000012" in out and "total" in out
    assert _run(cb, ["delete", "deletable@12", "--yes", "--force"], capsys)[0] == 0
    assert not (run / "checkpoints" / "step_000012").exists()


def test_bad_paths_exit_2_without_a_traceback(world, tmp_path, capsys):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for tool, args in (("training_resume_helper.py", [str(tmp_path / "nope")]),
                       ("checkpoint_browser.py", ["inspect", str(tmp_path / "nope") + "@3"])):
        proc = subprocess.run([sys.executable, str(ROOT / "tools" / tool), *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
    for module, argv in ((rh, [tmp_path]), (rh, ["tiny", "--target-steps", "0"]), (cb, ["list", tmp_path / "x"]),
                         (cb, ["inspect", "tiny@5"]), (cb, ["compare", "tiny@4", "tiny@99"]),
                         (cb, ["du", tmp_path / "x"])):
        code, _, err = _run(module, argv, capsys)
        assert code == 2 and err.startswith("error:"), (argv, err)
    for module in (rh, cb):
        with pytest.raises(SystemExit) as e:
            module.main(["--help"])
        assert e.value.code == 0 and "examples:" in capsys.readouterr().out


def test_a_run_started_from_a_toml_resumes_with_its_config(tmp_path):
    """Issue 14 #10: --config FILE and only the settings that differ, not 15 --set flags."""
    toml = tmp_path / "my.toml"
    toml.write_text("[model]\ndepth = 2\n[optim]\nmatrix_lr = 0.01\nwarmup_steps = 3\n[run]\nsave_every = 4\n")
    saved = asdict(load_config(toml, {"num_iterations": "40"}))          # what the checkpoint records
    argv, env, notes = rh.resume_command(tmp_path / "run", {"train_config": saved, "launch": {"config": str(toml)}})
    assert argv == ["mini-nanochat", "pretrain", "--run-dir", str(tmp_path / "run"), "--resume",
                    "--config", str(toml), "--set", "num_iterations=40"]
    toml.unlink()                                                        # gone: every setting spelled out
    argv, _, _ = rh.resume_command(tmp_path / "run", {"train_config": saved, "launch": {"config": str(toml)}})
    assert "--config" not in argv and "warmup_steps=3" in argv and "matrix_lr=0.01" in argv


def test_the_tools_survive_every_corrupt_checkpoint(world, capsys):
    """Issue 15 #6: each corruption class of Phase 2's suite, through inspect, list, du, compare and
    the resume helper: a verdict or one error line, never an exception."""
    import warnings

    from phases.phase2_training.test_integrity import CORRUPTIONS, LOAD_TIME
    for i, (name, corrupt) in enumerate({**CORRUPTIONS, **LOAD_TIME}.items()):
        run = _copy(world, f"corrupt_{i}")
        corrupt(run / "checkpoints" / "step_000008")
        for tool, argv in ((cb, ["inspect", f"{run}@8"]), (cb, ["inspect", run]), (cb, ["list", run]),
                           (cb, ["du", run]), (cb, ["compare", f"{run}@4", f"{run}@8", "--no-generate"]),
                           (rh, [run, "--fast"]), (rh, [run, "--json"])):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                code, out, err = _run(tool, argv, capsys)
            assert code in (0, 1, 2), (name, argv)
            assert code != 2 or err.startswith("error: "), (name, argv, err)
            if argv[0] == "inspect" and str(argv[1]).endswith("@8") and not check_checkpoint(
                    run / "checkpoints" / "step_000008", hash=False).ok:
                assert code in (1, 2), (name, out[-500:])       # a broken checkpoint never exits 0
        shutil.rmtree(run)
