"""What a training config derives, before any data is read: the model, the batch arithmetic, the horizon, the cost.

``derive(cfg, vocab_size, world_size)`` checks the config (``config.check_config``) and
returns a ``Plan``: the model configuration from the depth dial (width, heads), its
parameter count and training FLOPs per token (counted on the meta device: no memory, no
random numbers), the tokens of one forward and of one optimizer step, and the gradient
accumulation that joins them (``total_batch_size`` must be a whole number of micro-steps
on all ranks). ``Plan.describe`` prints all of it, with the horizon and the optimizer's
settings: every run shows what it derived before it starts.

What it leaves out: deriving the batch size, horizon and learning rates from the depth
(Phase 3's ``recipe.derive`` fills in the -1 values, then calls this).

Run: ``python -m phases.phase2_training.plan [FILE.toml]`` prints the plan of Phase 2's defaults (or
of a TOML file of Phase 2's keys; the files in ``examples/`` hold later phases' keys too, and
``mini-nanochat pretrain --config examples/cpu_demo.toml`` prints their plan as it starts).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

from phases.common.console import UserError
from phases.phase1_transformer.config import GPTConfig
from phases.phase2_training.config import TrainConfig, check_config, load_config


@dataclass
class Plan:
    """Everything derived from a TrainConfig before training starts."""
    config: TrainConfig
    model: GPTConfig
    world_size: int
    tokens_per_micro: int        # one rank's forward: device_batch_size * sequence_len
    total_batch_size: int        # tokens per optimizer step, all ranks
    grad_accum: int
    num_params: int = 0
    flops_per_token: float = 0.0

    def describe(self) -> str:
        c, m = self.config, self.model
        tokens = self.total_batch_size * c.num_iterations
        lines = [
            "model (from the depth dial):",
            *("  " + line for line in m.describe().splitlines()),
            f"  parameters          {self.num_params:,}",
            f"  FLOPs/token (train) {self.flops_per_token:.4g}",
            "batch:",
            f"  device batch        {c.device_batch_size} x {c.sequence_len} = {self.tokens_per_micro:,} tokens",
            f"  world size          {self.world_size}",
            f"  total batch         {self.total_batch_size:,} tokens/step"
            f" = {self.tokens_per_micro:,} x {self.world_size} ranks x {self.grad_accum} accumulation",
            "horizon:",
            f"  iterations          {c.num_iterations:,}" + (f" (or {c.max_seconds:g}s, whichever first)"
                                                            if c.max_seconds else ""),
            f"  tokens              {tokens:,} ({tokens / max(1, self.num_params):.2f} per parameter)",
            f"  training FLOPs      {tokens * self.flops_per_token:.3g}",
            "optimizer:",
            f"  {c.optimizer}: matrix lr {c.matrix_lr:g}, embedding lr {c.embedding_lr:g}, unembedding lr "
            f"{c.unembedding_lr:g}, scalar lr {c.scalar_lr:g}, weight decay {c.weight_decay:g}, "
            f"betas ({c.adam_beta1:g}, {c.adam_beta2:g})",
            f"  schedule: warmup {c.warmup_steps} steps, warmdown last {c.warmdown_ratio:.0%} to "
            f"{c.final_lr_frac:g} x lr",
        ]
        return "\n".join(lines)


# --8<-- [start:derive]
def derive(cfg: TrainConfig, vocab_size: int, world_size: int = 1, optimizers: tuple = ("adamw",)) -> Plan:
    """Check the config for consistency and work out the batch arithmetic."""
    check_config(cfg)                                   # every key's type and range
    if cfg.num_iterations < 1:
        raise UserError(f"num_iterations must be >= 1 here (Phase 3 derives -1 from the depth), got {cfg.num_iterations}")
    if cfg.optimizer not in optimizers:
        raise UserError(f"optimizer {cfg.optimizer!r} is not available here; choose from {', '.join(optimizers)}")
    model = cfg.model_config(vocab_size)
    plan_counts = _counts(model)                        # refuses a model no machine holds, before building it
    per_micro = cfg.device_batch_size * cfg.sequence_len
    per_round = per_micro * world_size                  # tokens of one micro-step on all ranks
    total = cfg.total_batch_size if cfg.total_batch_size > 0 else per_round
    if total % per_round:
        raise UserError(f"total_batch_size {total:,} is not a multiple of device_batch_size x sequence_len x "
                        f"world_size = {cfg.device_batch_size} x {cfg.sequence_len} x {world_size} = {per_round:,}")
    return Plan(cfg, model, world_size, per_micro, total, total // per_round, *plan_counts)
# --8<-- [end:derive]


def _counts(model: GPTConfig) -> tuple[int, float]:
    """(parameters, training FLOPs per token) of the model a config describes: built on the meta
    device (shapes only), after Phase 1's ``check_size`` refused what no machine could hold."""
    from phases.phase1_transformer.memory import meta_model
    m = meta_model(model)
    return m.param_counts()["total"], m.estimate_flops()


if __name__ == "__main__":
    from phases.common.console import run_command

    def main():
        cfg = load_config(sys.argv[1] if len(sys.argv) > 1 else None)
        print(derive(cfg, vocab_size=8192).describe())

    sys.exit(run_command(main))
