"""Phase 2 checkpoint, step 6: configuration files, overrides, the derived plan (config.py)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from phases.phase2_training.config import TrainConfig, load_config
from phases.phase2_training.plan import derive

pytestmark = pytest.mark.phase2
REPO = Path(__file__).resolve().parents[2]


def test_config_file_and_overrides(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[model]\ndepth = 3\n[optim]\nmatrix_lr = 0.01\n")
    cfg = load_config(path, {"device_batch_size": "8", "compile": "true"})
    assert (cfg.depth, cfg.matrix_lr, cfg.device_batch_size, cfg.compile) == (3, 0.01, 8, True)


@pytest.mark.parametrize("text, overrides, message", [
    ("depth = 3\nbogus = 1\n", {}, "unknown key 'bogus'"),
    ("depth = 'three'\n", {}, "depth must be an int"),
    ("depth = [\n", {}, "not valid TOML"),
    ("", {"matrix_lr": "fast"}, "matrix_lr must be a float"),
    ("", {"nope": "1"}, "unknown setting 'nope'"),
    ("", {"optim.matrix_lr": "0.01"}, "settings are flat: write matrix_lr="),   # the TOML's section
    ("", {"matirx_lr": "0.01"}, r"unknown setting 'matirx_lr' \(did you mean matrix_lr\?\)"),
])
def test_config_errors_are_clear(tmp_path, text, overrides, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(Exception, match=message):
        load_config(path, overrides)


def test_a_missing_relative_config_names_the_directory_it_was_looked_for_in(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)          # e.g. run from a phase folder: examples/ is not there
    with pytest.raises(Exception, match="a relative path is taken from the current directory"):
        load_config("examples/cpu_demo.toml")


def test_batch_that_does_not_divide_is_rejected():
    cfg = TrainConfig(device_batch_size=4, sequence_len=32, total_batch_size=1000)
    with pytest.raises(Exception, match="not a multiple of device_batch_size x sequence_len"):
        derive(cfg, vocab_size=512)
    plan = derive(cfg.replace(total_batch_size=512), vocab_size=512)
    assert plan.grad_accum == 4 and "4 accumulation" in plan.describe()


def test_cli_pretrain_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("depth = 0\n")
    r = subprocess.run([sys.executable, "-m", "mini_nanochat", "pretrain", "--config", str(bad)],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and "error:" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "mini_nanochat", "pretrain", "--set", "matrix_lr"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and "expected KEY=VALUE" in r.stderr



def test_compose_unions_keys_without_a_diamond():
    from dataclasses import dataclass, fields

    from phases.phase2_training.config import compose

    @dataclass
    class Extra:
        widgets: int = 3
        num_iterations: int = 7          # a later part may change a default

    Composed = compose("Composed", TrainConfig, Extra, module=__name__)
    cfg = Composed()
    assert isinstance(cfg, TrainConfig) and Composed.__mro__[1] is TrainConfig   # one base, no diamond
    assert (cfg.widgets, cfg.num_iterations, cfg.depth) == (3, 7, 4)
    assert [f.name for f in fields(Composed)][-1] == "widgets"
    assert load_config(None, {"widgets": "5"}, cls=Composed).widgets == 5


def test_a_flag_and_a_set_that_agree_are_accepted_and_disagreeing_ones_refused():
    # Review find: the strings were compared, so --set compile=true --compile ("true" vs "True")
    # and --set num_iterations=1e3 --num-iterations 1000 were refused as "given twice".
    import argparse

    from phases.common.console import UserError
    from phases.phase2_training.cli import add_training_arguments, config_from_args
    parser = argparse.ArgumentParser()
    add_training_arguments(parser)
    for argv in (["--set", "compile=true", "--compile"], ["--set", "num_iterations=1e3", "--num-iterations", "1000"]):
        cfg = config_from_args(parser.parse_args(argv), load_config)
        assert cfg.num_iterations == 1000 or cfg.compile
    with pytest.raises(UserError, match="given twice"):
        config_from_args(parser.parse_args(["--set", "num_iterations=5", "--num-iterations", "6"]), load_config)
