"""Tests of tools/model_calculator.py: exact counts, the training plan, the fit, the CLI.

The tool is a script (``tools`` is not a package), so it is loaded by path. Models are built
on the meta device, so even d26 costs no memory. The measurements it shows are tested where
they live: Phase 1's test_memory.py (activations, KV cache), Phase 4's test_zero.py (optimizer
state per rank), Phase 3's test_scaling.py (the plan's rules).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _tools import load_tool

from phases.phase1_transformer.config import GPTConfig, preset

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "model_calculator.py"


mc = load_tool("model_calculator")

# nanochat's totals (reference spec, section 2.1)
NANOCHAT_TOTALS = {"d12": 286_261_730, "d20": 896_533_746, "d24": 1_384_122_122, "d26": 1_681_786_938,
                   "runcpu-d6": 73_531_646}


def tiny(**kw) -> GPTConfig:
    """Every feature on: GQA, short windows (S = 128 < T = 256), value embeddings, smear, backout."""
    args = dict(vocab_size=320, sequence_len=256, aspect_ratio=16, head_dim=16, n_kv_head=2, window_pattern="SSSL")
    args.update(kw)
    return GPTConfig.from_depth(4, **args)


@pytest.mark.parametrize("name", list(NANOCHAT_TOTALS))
def test_preset_totals_match_nanochat(name):
    counts = mc.param_report(mc.meta_model(preset(name)))["counts"]
    assert counts["total"] == NANOCHAT_TOTALS[name]


def test_breakdown_sums_to_total_and_to_every_parameter():
    model = mc.meta_model(preset("d12"))
    report = mc.param_report(model)
    c = report["counts"]
    parts = sum(v for k, v in c.items() if k != "total")
    assert parts == c["total"] == sum(p.numel() for p in model.parameters())
    assert report["scaling_params"] == 110_100_912  # nanochat: transformer matrices + lm_head
    assert report["largest"]["numel"] == max(p.numel() for p in model.parameters())


def test_switches_change_the_counts():
    cfg, _ = mc.make_config("d12", value_embeds=False)
    assert mc.param_report(mc.meta_model(cfg))["counts"]["value_embeds"] == 0
    with pytest.raises(mc.UserError):
        mc.make_config("d12", depth=12)
    with pytest.raises(mc.UserError):
        mc.make_config("nope")


def test_training_plan_reproduces_nanochat():
    n12 = 110_100_912
    d20 = mc.training_plan(435_160_240, n12, 2.886e9, ratio=12)
    assert (d20["total_batch"], d20["iterations"]) == (1_048_576, 4_980)
    d24 = mc.training_plan(729_810_624, n12, 4.775e9, ratio=8)  # the speedrun
    assert (d24["total_batch"], d24["iterations"]) == (1_048_576, 5_568)
    d12 = mc.training_plan(n12, n12, 7.597e8)
    assert d12["total_batch"] == 2 ** 19 and d12["total_flops"] == pytest.approx(1.0e18, rel=0.01)


def test_fit_is_monotone():
    static, fixed, per_seq = 10 * mc.GiB, mc.GiB, 3 * mc.GiB
    answers = [mc.fits(static, fixed, per_seq, gb * mc.GiB) for gb in (1, 11, 14, 20, 40, 80, 200, 10_000)]
    assert answers == sorted(answers) and answers[0] == answers[1] == 0 and answers[2] == 1
    assert answers[-1] == 1024  # capped
    assert mc.fits(static, fixed, per_seq, 80 * mc.GiB, max_batch=8) == 8


def run_main(capsys, *argv):
    code = mc.run_command(lambda: mc.main(list(argv)))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_report_and_fit(capsys):
    code, out, _ = run_main(capsys, "--preset", "cpu-demo", "--batch", "8", "--gpu", "H100", "--gpus", "8",
                            "--dollars-per-gpu-hour", "3", "--no-color")
    assert code == 0
    for text in ("11,534,466", "optimizer Muon+AdamW", "KV cache", "suggested --device-batch-size", "cost"):
        assert text in out
    code, out, _ = run_main(capsys, "--preset", "cpu-demo", "--gpu-mem", "0.001")
    assert code == 0 and "does not fit even at batch 1" in out


def test_cli_json_and_compare(capsys):
    code, out, _ = run_main(capsys, "--preset", "cpu-demo", "--gpu-mem", "24", "--json")
    data = json.loads(out)
    assert code == 0 and data["params"]["counts"]["total"] == 11_534_466 and data["fit"]["best_batch"] >= 1
    code, out, _ = run_main(capsys, "--compare", "cpu-demo", "runcpu-d6", "--json")
    assert code == 0 and [r["preset"] for r in json.loads(out)] == ["cpu-demo", "runcpu-d6"]


@pytest.mark.parametrize("argv,message", [(["--preset", "d99"], "unknown preset"), (["--batch", "0"], "--batch"),
                                          (["--gpu", "X100"], "unknown GPU"), (["--depth", "6", "--n-kv-head", "4"],
                                                                              "n_kv_head")])
def test_cli_user_errors(capsys, argv, message):
    code, _, err = run_main(capsys, *argv)
    assert code == 2 and err.startswith("error:") and message in err


def test_cli_help_and_bad_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        mc.main(["--help"])
    assert exit_.value.code == 0 and "examples:" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        mc.main(["--bogus"])
    assert exit_.value.code == 2 and "error: unrecognized arguments: --bogus" in capsys.readouterr().err


def test_cli_subprocess_user_error_has_no_traceback():
    bad = subprocess.run([sys.executable, str(TOOL), "--preset", "d99"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown preset") and "Traceback" not in bad.stderr
