"""Phase 3 checkpoint, part 2: the depth dial's numbers, the groups, the schedules, the loop.

Tolerances (ADR.md): the auto-scaling table within 1% of nanochat's (spec §3.3); training
through the Phase 2 loop with MuonAdamW resumes bitwise (torch.equal) on CPU float32.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from phases.phase1_transformer.model import GPT
from phases.phase2_training import checkpoint as ck
from phases.phase2_training import train as p2train

pytestmark = pytest.mark.phase3

# nanochat's table (spec §3.3): depth -> (batch tokens, iterations, Muon weight decay), ratio 12
NANOCHAT = {12: (524_288, 2_520, 0.280), 16: (524_288, 5_376, 0.131), 20: (1_048_576, 4_980, 0.100),
            24: (1_048_576, 8_352, 0.0597), 26: (1_048_576, 10_510, 0.0475)}


def test_scaling_rules_reproduce_nanochats_table(scaling):
    """The rules alone (``scaling.py``: --impl scaling=my_scaling.py), before any training config."""
    rows = {r["depth"]: r for r in scaling.table(depths=sorted(NANOCHAT), ratio=12.0, vocab_size=32768)}
    for depth, (batch, iters, wd) in NANOCHAT.items():
        assert math.isclose(rows[depth]["batch"], batch, rel_tol=0.01), depth
        assert math.isclose(rows[depth]["iterations"], iters, rel_tol=0.01), depth
        assert math.isclose(rows[depth]["weight_decay"], wd, rel_tol=0.01), depth
        assert math.isclose(rows[depth]["lr_batch_scale"], (batch / 2**19) ** 0.5, rel_tol=1e-6), depth


@pytest.mark.parametrize("depth", sorted(NANOCHAT))
def test_auto_scaling_matches_nanochat(trainer, depth):
    cfg = trainer.MuonTrainConfig(depth=depth, head_dim=128, sequence_len=2048, window_pattern="SSSL")
    plan = trainer.derive(cfg, vocab_size=32768)
    batch, iters, wd = NANOCHAT[depth]
    assert math.isclose(plan.total_batch_size, batch, rel_tol=0.01)
    assert math.isclose(plan.config.num_iterations, iters, rel_tol=0.01)
    assert math.isclose(plan.scaling.weight_decay, wd, rel_tol=0.01)
    assert plan.grad_accum == batch // (16 * 2048)


def test_horizon_precedence_and_overrides(trainer):
    base = dict(depth=12, head_dim=128, sequence_len=2048, device_batch_size=32)
    by_ratio = trainer.derive(trainer.MuonTrainConfig(**base, target_param_data_ratio=8), 32768)
    assert by_ratio.config.num_iterations == by_ratio.scaling.target_tokens // by_ratio.total_batch_size
    flops = trainer.derive(trainer.MuonTrainConfig(**base, target_flops=1e18), 32768)
    assert flops.scaling.iterations_source == "target_flops"
    both = trainer.derive(trainer.MuonTrainConfig(**base, target_flops=1e18, num_iterations=77,
                                                  total_batch_size=2 ** 18), 32768)
    assert both.config.num_iterations == 77 and both.total_batch_size == 2 ** 18
    assert math.isclose(both.scaling.lr_batch_scale, 0.5 ** 0.5)          # sqrt(2^18 / 2^19)
    text = both.describe()
    for needle in ("(from num_iterations)", "262,144 tokens (set", "sqrt(B/B_ref) = 0.7071", "Muon weight decay",
                   "adamw wte", "muon  blocks"):
        assert needle in text, needle


@pytest.mark.parametrize("overrides,message", [
    ({"optimizer": "sgd"}, "optimizer must be"),
    ({"ns_coefficients": "cubic"}, "Newton-Schulz coefficients"),
    ({"muon_momentum": 1.0}, "momenta"),
    ({"target_param_data_ratio": 0.0}, "target_param_data_ratio must be > 0"),
    ({"total_batch_size": 1000}, "not a multiple"),
])
def test_config_errors_are_clear(trainer, overrides, message, tmp_path):
    with pytest.raises(Exception, match=message):
        cfg = trainer.load_config(None, {"depth": "2", "aspect_ratio": "32", "head_dim": "32",
                                         "num_iterations": "5", **{k: str(v) for k, v in overrides.items()}})
        plan = trainer.derive(cfg, 512)
        model = GPT.build(plan.model)
        trainer.make_optimizer(model, plan.config, plan)


@pytest.mark.parametrize("optimizer", ["muon", "adamw"])
def test_every_parameter_in_exactly_one_group(trainer, optimizer):
    cfg = trainer.MuonTrainConfig(depth=4, aspect_ratio=32, head_dim=32, sequence_len=32, num_iterations=5,
                                  optimizer=optimizer)
    plan = trainer.derive(cfg, 512)
    model = GPT.build(plan.model)
    groups = trainer.param_groups(model, plan.config, plan.scaling)
    seen = [id(p) for g in groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in model.parameters())
    names = {id(p): n for n, p in model.named_parameters()}
    for g in groups:
        if g["kind"] == "muon":
            assert {tuple(p.shape) for p in g["params"]} == {tuple(g["params"][0].shape)}
            assert all(names[id(p)].startswith("blocks.") and p.ndim == 2 for p in g["params"])
    muon_names = {names[id(p)] for g in groups if g["kind"] == "muon" for p in g["params"]}
    assert ("blocks.1.attn.ve_gate.weight" in muon_names) == (optimizer == "muon")
    assert "smear_gate.weight" not in muon_names


def test_schedules(trainer):
    cfg = trainer.MuonTrainConfig(num_iterations=1000, warmdown_ratio=0.5, muon_momentum_warmup=100)
    mom = [trainer.muon_momentum(s, cfg) for s in (0, 50, 100, 499, 500, 750, 1000)]
    assert mom == pytest.approx([0.85, 0.91, 0.97, 0.97, 0.97, 0.935, 0.90])
    wdm = [trainer.weight_decay_multiplier(s, cfg) for s in (0, 500, 1000)]
    assert wdm == pytest.approx([1.0, 0.5, 0.0], abs=1e-12)


def test_set_hparams_changes_every_group(trainer):
    cfg = trainer.MuonTrainConfig(depth=2, aspect_ratio=32, head_dim=32, sequence_len=32, num_iterations=10,
                                  muon_momentum_warmup=4)
    plan = trainer.derive(cfg, 512)
    opt = trainer.make_optimizer(GPT.build(plan.model), plan.config, plan)
    trainer.set_hparams(opt, 5, plan.config, 0.5)
    for g in opt.param_groups:
        assert g["lr"] == pytest.approx(0.5 * g["initial_lr"])
        if g["kind"] == "muon":
            assert g["momentum"] == trainer.muon_momentum(5, plan.config)
            assert g["weight_decay"] == pytest.approx(g["initial_weight_decay"] * 0.5 * (1 + math.cos(math.pi / 2)))


def _records(run_dir, event: str = "step"):
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("event") == event]


def test_muon_trains_and_resumes_bitwise(trainer, tiny_cfg, tmp_path, monkeypatch):
    full = trainer.train(tiny_cfg.replace(run_dir=str(tmp_path / "full")), show_progress=False)
    losses = [r["loss"] for r in _records(full.run_dir)]
    bpbs = [r["val_bpb"] for r in _records(full.run_dir, "eval")]
    assert bpbs[-1] < bpbs[0] - 0.2, bpbs             # it learns (validation, not noisy batch losses)
    original = p2train.lr_multiplier

    def interrupted(step, *args):                       # Ctrl-C in the middle of step 7
        if step == 6:
            raise KeyboardInterrupt
        return original(step, *args)
    monkeypatch.setattr(p2train, "lr_multiplier", interrupted)
    cut = tiny_cfg.replace(run_dir=str(tmp_path / "cut"))
    with pytest.raises(KeyboardInterrupt):
        trainer.train(cut, show_progress=False)
    monkeypatch.setattr(p2train, "lr_multiplier", original)
    saved = ck.latest_checkpoint(tmp_path / "cut" / "checkpoints")
    assert saved.step == 6
    state = torch.load(saved.path / "optim.pt", weights_only=True)     # plain data only
    assert any("momentum_buffer" in s for s in state["optimizer"]["state"].values())
    trainer.train(cut, resume=True, show_progress=False)
    assert [r["loss"] for r in _records(tmp_path / "cut")] == losses
    wa = ck.load_weights(ck.latest_checkpoint(full.run_dir / "checkpoints").path)
    wb = ck.load_weights(ck.latest_checkpoint(tmp_path / "cut" / "checkpoints").path)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_adamw_baseline_runs_through_the_loop(trainer, tiny_cfg):
    result = trainer.train(tiny_cfg.replace(optimizer="adamw", num_iterations=4, eval_every=0, save_every=0),
                           show_progress=False)
    assert result.step == 4 and math.isfinite(result.val_bpb)
