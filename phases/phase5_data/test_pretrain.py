"""Phase 5 checkpoint: the pretraining composition (pretrain.py): one config, one recipe, one command."""
from __future__ import annotations

import argparse
import dataclasses

import pytest

pytestmark = pytest.mark.phase5


def test_config_is_the_union_of_the_phases_keys():
    from phases.phase3_optimizers.recipe import MuonTrainConfig
    from phases.phase4_ddp.recipe import DistKeys
    from phases.phase5_data.loader import DataKeys
    from phases.phase5_data.pretrain import PretrainConfig, load_config
    names = {f.name for f in dataclasses.fields(PretrainConfig)}
    for part in (MuonTrainConfig, DistKeys, DataKeys):
        assert {f.name for f in dataclasses.fields(part)} <= names
    assert PretrainConfig.__mro__[1] is MuonTrainConfig                 # composed: one base, no diamond
    cfg = load_config(None, {"grad_sync": "ddp", "doc_buffer": "12", "optimizer": "adamw"})
    assert (cfg.grad_sync, cfg.doc_buffer, cfg.optimizer) == ("ddp", 12, "adamw")


def test_recipe_is_phase3_optimizer_and_phase5_data():
    from phases.phase3_optimizers import recipe as p3
    from phases.phase5_data.loader import make_data
    from phases.phase5_data.pretrain import pretrain_recipe
    r = pretrain_recipe()
    assert (r.derive, r.make_optimizer, r.set_hparams, r.make_data) == (p3.derive, p3.make_optimizer,
                                                                        p3.set_hparams, make_data)


def test_command_line_flags_and_plan(capsys, tmp_path):
    from phases.phase5_data import pretrain
    parser = argparse.ArgumentParser()
    pretrain.add_arguments(parser)
    args = parser.parse_args(["--depth", "20", "--set", "head_dim=128", "--set", "sequence_len=2048",
                              "--set", "window_pattern=SSSL", "--plan", "--world-size", "8"])
    assert pretrain.run(args) is None
    out = capsys.readouterr().out
    assert "x 8 ranks x" in out                                             # the batch split over 8 ranks
    assert "grad_sync: zero on 8 ranks" in out and "1,048,576 tokens/step" in out


@pytest.mark.parametrize("flag", ["--world-size", "--vocab-size"])
def test_plan_only_flags_are_refused_for_a_training_run(flag):
    # `--world-size 2` without --plan used to train silently on one process.
    from phases.common.console import UserError
    from phases.phase5_data import pretrain
    parser = argparse.ArgumentParser()
    pretrain.add_arguments(parser)
    with pytest.raises(UserError, match=f"{flag} only sets what --plan assumes; .*torchrun"):
        pretrain.run(parser.parse_args(["--config", "examples/cpu_ddp.toml", flag, "2"]))
