"""Phase 3 checkpoint: the recipe (recipe.py): auto-scaled plans, the groups, the schedules, the loop.

Tolerances (ADR.md): the auto-scaling within 1% of nanochat's table (spec §3.3); training
through the Phase 2 loop with MuonAdamW resumes bitwise (torch.equal) on CPU float32.
"""
from __future__ import annotations

import math

import pytest
import torch

from phases.phase1_transformer.model import GPT
from phases.phase2_training import checkpoint as ck
from phases.phase2_training import load
from phases.phase2_training.metrics import read_metrics

pytestmark = pytest.mark.phase3

# nanochat's table (spec §3.3): depth -> (batch tokens, iterations, Muon weight decay), ratio 12
NANOCHAT = {12: (524_288, 2_520, 0.280), 16: (524_288, 5_376, 0.131), 20: (1_048_576, 4_980, 0.100),
            24: (1_048_576, 8_352, 0.0597), 26: (1_048_576, 10_510, 0.0475)}


@pytest.mark.parametrize("depth", sorted(NANOCHAT))
def test_auto_scaling_matches_nanochat(recipe, depth):
    cfg = recipe.MuonTrainConfig(depth=depth, head_dim=128, sequence_len=2048, window_pattern="SSSL")
    plan = recipe.derive(cfg, vocab_size=32768)
    batch, iters, wd = NANOCHAT[depth]
    assert math.isclose(plan.total_batch_size, batch, rel_tol=0.01)
    assert math.isclose(plan.config.num_iterations, iters, rel_tol=0.01)
    assert math.isclose(plan.scaling.weight_decay, wd, rel_tol=0.01)
    assert plan.grad_accum == batch // (16 * 2048)


def test_horizon_precedence_and_overrides(recipe):
    base = dict(depth=12, head_dim=128, sequence_len=2048, device_batch_size=32)
    by_ratio = recipe.derive(recipe.MuonTrainConfig(**base, target_param_data_ratio=8), 32768)
    assert by_ratio.config.num_iterations == by_ratio.scaling.target_tokens // by_ratio.total_batch_size
    flops = recipe.derive(recipe.MuonTrainConfig(**base, target_flops=1e18), 32768)
    assert flops.scaling.iterations_source == "target_flops"
    both = recipe.derive(recipe.MuonTrainConfig(**base, target_flops=1e18, num_iterations=77,
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
    ({"muon_momentum": 1.0}, r"muon_momentum must be in \[0, 1\)"),
    ({"target_param_data_ratio": 0.0}, "target_param_data_ratio must be > 0"),
    ({"total_batch_size": 1000}, "not a multiple"),
])
def test_config_errors_are_clear(recipe, overrides, message, tmp_path):
    with pytest.raises(Exception, match=message):
        cfg = recipe.load_config(None, {"depth": "2", "aspect_ratio": "32", "head_dim": "32",
                                         "num_iterations": "5", **{k: str(v) for k, v in overrides.items()}})
        plan = recipe.derive(cfg, 512)
        model = GPT.build(plan.model)
        recipe.make_optimizer(model, plan.config, plan)


@pytest.mark.parametrize("optimizer", ["muon", "adamw"])
def test_every_parameter_in_exactly_one_group(recipe, optimizer):
    cfg = recipe.MuonTrainConfig(depth=4, aspect_ratio=32, head_dim=32, sequence_len=32, num_iterations=5,
                                  optimizer=optimizer)
    plan = recipe.derive(cfg, 512)
    model = GPT.build(plan.model)
    groups = recipe.param_groups(model, plan.config, plan.scaling)
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


def test_schedules(recipe):
    cfg = recipe.MuonTrainConfig(num_iterations=1000, warmdown_ratio=0.5, muon_momentum_warmup=100)
    mom = [recipe.muon_momentum(s, cfg) for s in (0, 50, 100, 499, 500, 750, 1000)]
    assert mom == pytest.approx([0.85, 0.91, 0.97, 0.97, 0.97, 0.935, 0.90])
    wdm = [recipe.weight_decay_multiplier(s, cfg) for s in (0, 500, 1000)]
    assert wdm == pytest.approx([1.0, 0.5, 0.0], abs=1e-12)


def test_set_hparams_changes_every_group(recipe):
    cfg = recipe.MuonTrainConfig(depth=2, aspect_ratio=32, head_dim=32, sequence_len=32, num_iterations=10,
                                  muon_momentum_warmup=4)
    plan = recipe.derive(cfg, 512)
    opt = recipe.make_optimizer(GPT.build(plan.model), plan.config, plan)
    recipe.set_hparams(opt, 5, plan.config, 0.5)
    for g in opt.param_groups:
        assert g["lr"] == pytest.approx(0.5 * g["initial_lr"])
        if g["kind"] == "muon":
            assert g["momentum"] == recipe.muon_momentum(5, plan.config)
            assert g["weight_decay"] == pytest.approx(g["initial_weight_decay"] * 0.5 * (1 + math.cos(math.pi / 2)))


def test_muon_trains_and_resumes_bitwise(recipe, tiny_cfg, assert_resume_exact, tmp_path):
    def momentum_saved(saved):                          # the optimizer state of step 6, on disk
        assert saved.step == 6
        state = torch.load(saved.path / "optim.pt", weights_only=True)     # plain data only
        assert any("momentum_buffer" in s for s in state["optimizer"]["state"].values())

    assert_resume_exact(recipe.train, tiny_cfg, stop_after=6, on_stop=momentum_saved)
    bpbs = [r["val_bpb"] for r in read_metrics(tmp_path / "full") if r.get("event") == "eval"]
    assert bpbs[-1] < bpbs[0] - 0.2, bpbs             # it learns (validation, not noisy batch losses)


def test_recipe_parts_and_the_applied_learning_rates(recipe, tiny_cfg):
    """The recipe swaps derive/optimizer/hparams only; checkpoints record the LRs really applied."""
    from phases.phase2_training.recipe import Recipe, make_data
    r = recipe.recipe(Recipe())
    assert (r.derive, r.make_optimizer, r.set_hparams, r.make_data) == (recipe.derive, recipe.make_optimizer,
                                                                        recipe.set_hparams, make_data)
    result = recipe.train(tiny_cfg.replace(num_iterations=2, eval_every=0, save_every=0), show_progress=False)
    meta = load.read_meta(result.run_dir)
    plan = recipe.derive(tiny_cfg.replace(num_iterations=2), 512)
    want = {g["name"]: g["initial_lr"] for g in recipe.param_groups(GPT.build(plan.model), plan.config, plan.scaling)}
    assert meta["initial_lrs"] == pytest.approx(want)
    assert meta["initial_lrs"]["wte"] == pytest.approx(tiny_cfg.embedding_lr * plan.scaling.dmodel_scale)


def test_adamw_baseline_runs_through_the_loop(recipe, tiny_cfg):
    result = recipe.train(tiny_cfg.replace(optimizer="adamw", num_iterations=4, eval_every=0, save_every=0),
                           show_progress=False)
    assert result.step == 4 and math.isfinite(result.val_bpb)


def test_the_plan_counts_parameters_and_flops(recipe):
    """Issue 14 #7: `python -m phases.phase3_optimizers.train` printed parameters 0 and FLOPs/token 0."""
    cfg = recipe.load_config(None, {"depth": "2", "aspect_ratio": "32", "head_dim": "32", "num_iterations": "5"})
    plan = recipe.derive(cfg, 512)
    model = GPT.build(plan.model, seed=0)
    assert plan.num_params == model.param_counts()["total"] > 0
    assert plan.flops_per_token == model.estimate_flops() > 0
    text = plan.describe()
    assert f"parameters          {plan.num_params:,}" in text and "training FLOPs      0\n" not in text
