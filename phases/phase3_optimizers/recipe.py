"""Phase 3's recipe for Phase 2's loop: MuonAdamW, its schedules, and the depth auto-scaling.

Nothing in the loop changes. ``recipe(base)`` swaps three parts of a ``Recipe``:

- ``derive``: the config's -1 values (``total_batch_size``, ``num_iterations``) are
  derived from the depth dial (``scaling.py``), every derived value is printed;
- ``make_optimizer``: ``MuonAdamW`` with nanochat's param groups (``param_groups``):
  Muon for every matrix in the blocks, AdamW for the embeddings, lm_head and scalars,
  each group with its own LR, betas and weight decay. ``optimizer = "adamw"`` puts the
  block matrices on AdamW instead (the baseline the benchmark compares with);
- ``set_hparams``: before each step, the LR schedule for every group, plus Muon's momentum
  warmup/warmdown and the cosine decay of its weight decay.

``train(cfg)`` runs Phase 2's loop with this recipe (the checkpoint tests use it); the one
pretraining command, ``mini-nanochat pretrain``, adds Phases 4 and 5 (``phases/phase5_data/pretrain.py``).

What it leaves out: nanochat's newest Muon refinements (see muon.py), several ranks.

Run: ``python -m phases.phase3_optimizers.recipe examples/cpu_demo.toml [VOCAB]`` prints the plan.
"""
from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass

from phases.common.console import UserError
from phases.phase1_transformer.config import check_size
from phases.phase1_transformer.model import GPT
from phases.phase2_training import config as p2config
from phases.phase2_training import plan as p2plan
from phases.phase2_training import train as p2train
from phases.phase2_training.plan import Plan
from phases.phase2_training.recipe import Recipe, Runtime
from phases.phase3_optimizers.muon import MuonAdamW, iteration_schedule, pick_method, stack_by_shape
from phases.phase3_optimizers.scaling import REFERENCE_BATCH, Scaling, depth_scaling, reference_config


@dataclass
class MuonTrainConfig(p2config.TrainConfig):
    """Phase 2's keys with nanochat's defaults, plus Phase 3's. -1 = derive from the depth dial."""
    total_batch_size: int = -1           # tokens per step; -1 = 2^round(log2(B_ref (D/D_ref)^0.383))
    num_iterations: int = -1             # -1 = from target_flops, else D // B
    target_param_data_ratio: float = 12.0  # D = ratio x N (N = block matrices + lm_head)
    target_flops: float = -1.0
    reference_batch_size: int = REFERENCE_BATCH  # B_ref: LRs were tuned at this batch
    optimizer: str = "muon"              # "muon" (MuonAdamW) or "adamw" (block matrices on AdamW)
    matrix_lr: float = 0.02              # Muon, x sqrt(B/B_ref)
    embedding_lr: float = 0.3            # AdamW groups: x sqrt(B/B_ref) x (d_model/768)^-0.5
    unembedding_lr: float = 0.008
    scalar_lr: float = 0.5               # x0_lambdas; resid_lambdas get 1% of it (no width scaling)
    weight_decay: float = 0.28           # Muon's at the reference; scaled by sqrt(B/B_ref) D_ref/D
    adamw_matrix_lr: float = 0.003       # block matrices when optimizer = "adamw"
    adam_beta1: float = 0.8              # betas of the block matrices when optimizer = "adamw"
    adam_beta2: float = 0.95
    warmup_steps: int = 40
    warmdown_ratio: float = 0.65
    muon_momentum_start: float = 0.85    # linear warmup to muon_momentum ...
    muon_momentum_warmup: int = 400      # ... over this many steps
    muon_momentum: float = 0.97
    muon_momentum_end: float = 0.90      # reached at the end of the LR warmdown
    ns_steps: int = 5
    ns_coefficients: str = "polar_express"  # or "quintic"
    ns_method: str = "auto"                  # Newton-Schulz on X ("standard") or on X X^T ("gram"); auto: by shape
    ns_precondition: str = "frobenius"       # or "aol": Turbo-Muon's row scaling, one iteration fewer
    gram_restart: int = 2                    # Gram NS rebuilds X X^T after this step (0: never; cheaper, less exact)
    muon_plus: bool = False              # Muon+: every update's norm set to sqrt(min(rows, cols))
    normuon: bool = True                 # NorMuon variance normalisation
    muon_beta2: float = 0.9
    cautious_wd: bool = True             # decay only where the update points toward 0
    wd_schedule: str = "cosine"          # Muon wd: "cosine" to 0 over the run, or "constant"


MuonTrainConfig.limits = {**p2config.LIMITS,  # -1 derives total_batch_size, num_iterations, target_flops
                          "target_param_data_ratio": p2config.above(0), "target_flops": p2config.derived(p2config.above(0)),
                          "reference_batch_size": p2config.at_least(1), "optimizer": p2config.one_of("muon", "adamw"),
                          "adamw_matrix_lr": p2config.at_least(0), "muon_momentum_start": p2config.between(0, 1, True),
                          "muon_momentum_warmup": p2config.at_least(1), "muon_momentum": p2config.between(0, 1, True),
                          "muon_momentum_end": p2config.between(0, 1, True), "muon_beta2": p2config.between(0, 1, True),
                          "ns_steps": p2config.at_least(1), "gram_restart": p2config.at_least(0),
                          "wd_schedule": p2config.one_of("cosine", "constant")}


def load_config(path=None, overrides: dict | None = None) -> MuonTrainConfig:
    return p2config.load_config(path, overrides, cls=MuonTrainConfig)


# --8<-- [start:groups_table]
def group_hparams(cfg: MuonTrainConfig, s: Scaling) -> dict[str, dict]:
    """AdamW groups by role (nanochat's table): LR, betas, weight decay after scaling."""
    bs, dm = s.lr_batch_scale, s.dmodel_scale
    return {
        "lm_head": dict(lr=cfg.unembedding_lr * dm * bs, betas=(0.8, 0.96), weight_decay=0.01),
        "wte": dict(lr=cfg.embedding_lr * dm * bs, betas=(0.8, 0.995), weight_decay=0.001),
        "value_embeds": dict(lr=cfg.embedding_lr * 0.5 * dm * bs, betas=(0.8, 0.995), weight_decay=0.01),
        "resid_lambdas": dict(lr=cfg.scalar_lr * 0.01 * bs, betas=(0.8, 0.95), weight_decay=0.05),
        "x0_lambdas": dict(lr=cfg.scalar_lr * bs, betas=(0.96, 0.95), weight_decay=0.0),
        "smear": dict(lr=0.2, betas=(0.8, 0.95), weight_decay=0.0),      # fixed: no scaling
        "matrices": dict(lr=cfg.adamw_matrix_lr * bs, betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=0.0),
    }
# --8<-- [end:groups_table]


def role_of(name: str) -> str:
    if name.startswith("blocks."):
        return "matrices"
    for prefix in ("lm_head", "wte", "value_embeds", "resid_lambdas", "x0_lambdas"):
        if name.startswith(prefix):
            return prefix
    if name.startswith(("smear_", "backout_")):
        return "smear"
    raise UserError(f"parameter {name!r} has no optimizer group; add it to role_of()")


# --8<-- [start:param_groups]
def param_groups(model: GPT, cfg: MuonTrainConfig, s: Scaling) -> list[dict]:
    """Every parameter in exactly one group; Muon groups hold matrices of one shape."""
    by_role: dict[str, list] = {}
    for name, p in model.named_parameters():
        by_role.setdefault(role_of(name), []).append(p)
    table = group_hparams(cfg, s)
    groups = []
    for role, params in by_role.items():
        if role == "matrices" and cfg.optimizer == "muon":
            continue
        groups.append({"kind": "adamw", "name": role, "params": params, "eps": 1e-10, **table[role]})
    if cfg.optimizer == "muon":
        for stack in stack_by_shape(by_role.get("matrices", [])):
            rows, cols = stack[0].shape
            groups.append({"kind": "muon", "name": f"blocks {rows}x{cols} x{len(stack)}", "params": stack,
                           "lr": cfg.matrix_lr * s.lr_batch_scale, "momentum": cfg.muon_momentum_start,
                           "weight_decay": s.weight_decay, "ns_steps": cfg.ns_steps,
                           "ns_coefficients": cfg.ns_coefficients, "ns_method": cfg.ns_method,
                           "ns_precondition": cfg.ns_precondition, "gram_restart": cfg.gram_restart,
                           "muon_plus": cfg.muon_plus, "normuon": cfg.normuon,
                           "beta2": cfg.muon_beta2, "cautious": cfg.cautious_wd})
    for g in groups:  # what the schedules multiply
        g["initial_lr"], g["initial_weight_decay"] = g["lr"], g["weight_decay"]
    return groups
# --8<-- [end:param_groups]


def make_optimizer(model: GPT, cfg: MuonTrainConfig, plan: "MuonPlan") -> MuonAdamW:
    return MuonAdamW(param_groups(model, cfg, plan.scaling))


# --8<-- [start:schedules]
def muon_momentum(step: int, cfg: MuonTrainConfig) -> float:
    """0.85 -> 0.97 over the first steps, 0.97 while the LR is flat, -> 0.90 during the warmdown."""
    n = cfg.num_iterations
    warmdown = round(cfg.warmdown_ratio * n)
    if step < cfg.muon_momentum_warmup:
        frac = step / cfg.muon_momentum_warmup
        return cfg.muon_momentum_start + frac * (cfg.muon_momentum - cfg.muon_momentum_start)
    if warmdown and step >= n - warmdown:
        frac = (step - (n - warmdown)) / warmdown
        return cfg.muon_momentum + frac * (cfg.muon_momentum_end - cfg.muon_momentum)
    return cfg.muon_momentum


def weight_decay_multiplier(step: int, cfg: MuonTrainConfig) -> float:
    """Muon's weight decay: cosine from its full value at step 0 down to 0 at the end."""
    if cfg.wd_schedule == "constant":
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * step / cfg.num_iterations))


def set_hparams(optimizer: MuonAdamW, step: int, cfg: MuonTrainConfig, lrm: float) -> None:
    """Called by the loop before every optimizer step."""
    momentum, wdm = muon_momentum(step, cfg), weight_decay_multiplier(step, cfg)
    for g in optimizer.param_groups:
        g["lr"] = g["initial_lr"] * lrm
        if g["kind"] == "muon":
            g["momentum"] = momentum
            g["weight_decay"] = g["initial_weight_decay"] * wdm
# --8<-- [end:schedules]


@dataclass
class MuonPlan(Plan):
    scaling: Scaling = None

    def describe(self) -> str:
        c, s = self.config, self.scaling
        base = super().describe().split("\noptimizer:")[0]
        lines = [base, s.describe(), f"optimizer: {c.optimizer}" + (" (MuonAdamW)" if c.optimizer == "muon" else
                                                                     " (block matrices on AdamW: the baseline)")]
        if c.optimizer == "muon":
            lines.append(f"  muon  blocks' matrices  lr {c.matrix_lr * s.lr_batch_scale:.4g} (x sqrt(max(1, rows/cols))),"
                         f" momentum {c.muon_momentum_start:g}->{c.muon_momentum:g}->{c.muon_momentum_end:g},"
                         f" wd {s.weight_decay:.4g} ({c.wd_schedule}), {c.ns_steps} {c.ns_coefficients} steps"
                         f" ({c.ns_method}" + (", AOL: the first step replaced" if c.ns_precondition == "aol" else "")
                         + (f", Gram restart after step {c.gram_restart}" if c.gram_restart else ", no Gram restart")
                         + "),"
                         f" normuon {'on' if c.normuon else 'off'}, cautious wd {'on' if c.cautious_wd else 'off'}"
                         + (", muon+ on" if c.muon_plus else ""))
        m = self.model
        present = {"value_embeds": m.value_embeds, "resid_lambdas": m.resid_scalars, "x0_lambdas": m.resid_scalars,
                   "smear": m.smear or m.backout, "matrices": c.optimizer != "muon"}
        for role, h in group_hparams(c, s).items():
            if not present.get(role, True):   # a switched-off feature has no parameters, so no group
                continue
            lines.append(f"  adamw {role:16s} lr {h['lr']:.4g}, betas {h['betas']}, wd {h['weight_decay']:g}")
        lines.append(f"  schedule: warmup {c.warmup_steps} steps, warmdown last {c.warmdown_ratio:.0%} to "
                     f"{c.final_lr_frac:g} x lr")
        return "\n".join(lines)


# --8<-- [start:derive]
def derive(cfg: MuonTrainConfig, vocab_size: int, runtime: Runtime | None = None) -> MuonPlan:
    """Fill in the -1 values from the depth dial, check the new keys, do Phase 2's arithmetic
    for ``runtime.world_size`` ranks (one without a runtime)."""
    if not isinstance(cfg, MuonTrainConfig):
        raise UserError("Phase 3's derive needs a MuonTrainConfig (load it with phase3 load_config)")
    p2config.check_config(cfg)                    # every key's type and range: -1 only where it derives
    iteration_schedule(cfg.ns_coefficients, cfg.ns_steps, cfg.ns_precondition)  # Muon's choices, before any work
    pick_method(cfg.ns_method, 1, 1, cfg.ns_steps)
    model = cfg.model_config(vocab_size)
    check_size(model)                             # before the meta models of the scaling rules are built
    ref = reference_config(model, cfg.aspect_ratio, cfg.head_dim)
    s = depth_scaling(model, ref, cfg.target_param_data_ratio, cfg.weight_decay, cfg.total_batch_size,
                      cfg.num_iterations, cfg.target_flops, cfg.reference_batch_size)
    resolved = cfg.replace(total_batch_size=s.batch, num_iterations=s.iterations)
    world_size = runtime.world_size if runtime is not None else 1
    base = p2plan.derive(resolved, vocab_size, world_size, optimizers=("muon", "adamw"))
    return MuonPlan(resolved, base.model, base.world_size, base.tokens_per_micro, base.total_batch_size,
                    base.grad_accum, base.num_params, base.flops_per_token, scaling=s)
# --8<-- [end:derive]


# --8<-- [start:recipe]
def recipe(base: Recipe | None = None) -> Recipe:
    """``base`` (default: Phase 2's) with the depth auto-scaling, MuonAdamW and its schedules."""
    return dataclasses.replace(base or Recipe(), derive=derive, make_optimizer=make_optimizer,
                               set_hparams=set_hparams)
# --8<-- [end:recipe]


def train(cfg: MuonTrainConfig, resume: bool = False, show_progress: bool = True, out=sys.stdout):
    """Phase 2's loop with this recipe: MuonAdamW and the auto-scaled plan, one process."""
    return p2train.train(cfg, resume=resume, show_progress=show_progress, out=out, recipe=recipe())


if __name__ == "__main__":
    from phases.common.console import run_command

    def main():
        cfg = load_config(sys.argv[1] if len(sys.argv) > 1 else None)
        plan = derive(cfg, vocab_size=int(sys.argv[2]) if len(sys.argv) > 2 else 8192)
        print(plan.describe())

    sys.exit(run_command(main))
