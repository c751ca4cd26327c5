"""Reinforcement learning on Phase 2's loop: sample answers, reward the right ones, repeat.

One optimizer step, on the same loop as pretraining and SFT:

1. take ``examples_per_step`` problems (each rank its share); for each, sample a group of
   ``num_samples`` answers with Phase 6's engine (all groups in one batched call: one
   prefill per problem, copied to its rows; tool calls run the calculator, whose output
   is forced into the answer with mask 0);
2. reward each answer (1 if its ``####`` number is right: the task's own judge, Phase 7),
   and turn rewards into advantages within the group (``grpo.advantages``);
3. each group is one micro-batch: inputs = problem + answer, targets = the answer's
   *sampled* tokens (the problem, forced tool output and padding are -1), and the loss is
   ``grpo.policy_loss``: the loop's gradient accumulation averages the groups.

Where the pieces plug in (both in ``rollouts.py``): ``make_data`` returns ``Rollouts`` (the
loader: it samples when its queue of groups is empty, and its state — how many problems it
has used, and the samples still to be reused — makes resume exact); ``make_model`` returns a ``Policy``, a
GPT whose forward, given a batch of rollouts as targets, returns the policy-gradient loss
(given ordinary targets, the cross-entropy: the val bpb of the reference answers still
works); ``extra_eval`` reports pass@1..k on held-out problems, greedy accuracy, and the
mean reward since the last evaluation.

The switches of ``grpo.py`` are config keys; the defaults are nanochat's ``chat_rl.py``:
no KL (``beta`` 0), one update per batch (on-policy: no ratio, no clipping), rewards minus
the group mean without dividing by the std, token-level normalisation. ``beta > 0`` keeps a
frozen copy of the starting model as the reference; ``updates_per_batch > 1`` reuses each
batch of samples for that many steps with PPO's clipped ratio (old log-probabilities are
computed right after sampling). Log-probabilities are those of the policy that sampled:
``softmax(logits / temperature)``.

What it leaves out: a learned value function (PPO), reward models, several reward
functions per task, asynchronous generation.

Run: ``mini-nanochat rl --config examples/cpu_rl.toml [--sft RUN]``, or
``python -m phases.phase8_sft.rl --config examples/cpu_rl.toml``.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from dataclasses import dataclass

from phases.common.console import UserError
from phases.phase1_transformer.config import resolve_device
from phases.phase1_transformer.memory import meta_model
from phases.phase2_training import config as p2config
from phases.phase2_training.cli import FLAGS, add_training_arguments, run_training
from phases.phase2_training.load import find_checkpoint
from phases.phase2_training.recipe import Recipe
from phases.phase2_training.train import RunResult, load_tokenizer
from phases.phase4_ddp import recipe as p4recipe
from phases.phase5_data.pretrain import PretrainConfig, pretrain_recipe
from phases.phase6_inference.kv_cache import check_fits
from phases.phase7_eval.tasks import TaskMixture
from phases.phase8_sft import mixture as mixtures
from phases.phase8_sft.grpo import NORMALISATIONS, SCALES
from phases.phase8_sft.rollouts import Policy, RolloutBatch, Rollouts  # noqa: F401  (rl.RolloutBatch for the tests)
from phases.phase8_sft.rows import fixed_batches
from phases.phase8_sft.sft import check_same_model, describe_with, inherit, load_start, scale_lrs, score, start_meta


# --8<-- [start:keys]
@dataclass
class RLKeys:
    """RL's own keys, and nanochat's RL values for pretraining keys (a later default wins)."""
    sft: str = ""                    # the run to start from (usually an SFT run)
    task: str = "arithmetic:5000"    # problems to practise on (mixture.py's spec; must be checkable)
    eval_task: str = "arithmetic:100"  # held-out problems for pass@k at every evaluation
    examples_per_step: int = 8       # problems per optimizer step, all ranks together
    num_samples: int = 8             # answers sampled per problem: the group
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_k: int = 50                  # 0 = no top-k filter
    scale_rewards: str = "none"      # "none" (nanochat, Dr. GRPO), "group" (GRPO), "batch"
    normalise: str = "token"         # "token" (DAPO, nanochat) or "sequence" (GRPO)
    beta: float = 0.0                # KL penalty to the starting model; 0 = no reference model
    updates_per_batch: int = 1       # > 1: reuse each batch of samples with PPO's clipped ratio
    clip_eps: float = 0.2
    clip_eps_high: float = 0.2       # DAPO raises the upper clip to 0.28
    pass_k: int = 8                  # samples per held-out problem for pass@1..k
    init_lr_frac: float = 0.05
    num_iterations: int = 60
    warmup_steps: int = 0
    warmdown_ratio: float = 1.0      # linear from the first step to 0 (nanochat)
    final_lr_frac: float = 0.0
    weight_decay: float = 0.0
    muon_momentum_start: float = 0.95
    muon_momentum: float = 0.95
    muon_momentum_end: float = 0.95
    eval_every: int = 20
    eval_tokens: int = 32768         # val bpb of held-out reference answers (a likelihood check)
    sample_every: int = 0
    save_every: int = 20
    run_name: str = "rl"
# --8<-- [end:keys]
RLKeys.limits = {**{k: p2config.at_least(1) for k in ("examples_per_step", "num_samples", "max_new_tokens",
                                                     "updates_per_batch", "pass_k")},
                 "temperature": p2config.above(0), "top_k": p2config.at_least(0),
                 "beta": p2config.at_least(0), "clip_eps": p2config.between(0, 1), "clip_eps_high": p2config.at_least(0),
                 "init_lr_frac": p2config.at_least(0)}


RLConfig = p2config.compose("RLConfig", PretrainConfig, RLKeys, module=__name__)


def load_config(path=None, overrides: dict | None = None):
    return inherit(RLConfig, path, overrides, start_key="sft")


# --8<-- [start:recipe]
def recipe(base: Recipe | None = None, task=None, evals=None) -> Recipe:
    """``base`` (default: pretraining's) turned into RL from ``cfg.sft``.

    ``task`` (a Phase 7 ``Task`` or ``TaskMixture`` whose ``reward`` judges an answer) and
    ``evals`` (held-out tasks) replace what ``cfg.task`` / ``cfg.eval_task`` name: practise
    on a task and reward of your own.
    """
    base = base or pretrain_recipe()
    held: dict = {}

    def check(cfg):
        if cfg.scale_rewards not in SCALES or cfg.normalise not in NORMALISATIONS:
            raise UserError(f"scale_rewards must be one of {SCALES} and normalise one of {NORMALISATIONS}")
        if cfg.num_samples < 2:
            raise UserError("num_samples must be >= 2: the group's mean reward is the baseline")

    def derive(cfg, vocab_size, rt):
        check(cfg)
        meta = start_meta(cfg.sft, "sft")
        # one micro-batch = one problem's group of answers; the loop accumulates a rank's problems
        nominal = cfg.replace(device_batch_size=cfg.num_samples,
                              total_batch_size=cfg.examples_per_step * cfg.num_samples * cfg.sequence_len)
        plan = base.derive(nominal, vocab_size, rt)
        check_same_model(plan, meta, cfg.sft)
        # A rank's rollouts are one batch: its problems x their samples rows, at most sequence_len
        # long; checked before any data is built.
        check_fits(max(1, cfg.examples_per_step // rt.world_size) * cfg.num_samples, cfg.sequence_len,
                   meta_model(plan.model).kv_bytes_per_token(), resolve_device(cfg.device))
        if "task" not in held:
            held["tok"] = load_tokenizer(cfg)[0]
            held["task"] = task if task is not None else mixtures.build(cfg.task, "train", seed=cfg.seed)
            held["evals"] = evals if evals is not None else \
                [mixtures.task_of(e, "test") for e in mixtures.parse_spec(cfg.eval_task)] if cfg.eval_task else []
        clip = (f"{cfg.updates_per_batch} updates per batch, ratio clipped to [{1 - cfg.clip_eps:g}, "
                f"{1 + cfg.clip_eps_high:g}]" if cfg.updates_per_batch > 1 else "on-policy: one update per batch")
        return describe_with(plan, [
            "reinforcement learning:",
            f"  from                {cfg.sft}, every LR x {cfg.init_lr_frac:g}",
            f"  problems            {len(held['task']):,} ({cfg.task if task is None else 'given'}); "
            f"{cfg.examples_per_step} per step x "
            f"{cfg.num_samples} samples (temperature {cfg.temperature:g}, top-k {cfg.top_k or 'off'}, "
            f"<= {cfg.max_new_tokens} tokens)",
            f"  objective           advantage = reward - group mean{'' if cfg.scale_rewards == 'none' else ', / std (' + cfg.scale_rewards + ')'}; "
            f"{cfg.normalise}-level normalisation; KL beta {cfg.beta:g}; {clip}",
            f"  held-out            {', '.join(t.name for t in held['evals']) or 'nothing'}: pass@1..{cfg.pass_k} "
            "and greedy accuracy at every evaluation"])

    def make_model(plan, device, dtype, seed):
        cfg = plan.config
        model = load_start(Policy.build(plan.model, device=device, dtype=dtype, seed=seed), cfg.sft, device)
        model.loss_options = dict(clip_eps=cfg.clip_eps, clip_eps_high=cfg.clip_eps_high, beta=cfg.beta,
                                  normalise=cfg.normalise)
        model.temperature = cfg.temperature
        if cfg.beta > 0:                   # a frozen copy of where RL started
            held["ref"] = copy.deepcopy(model).requires_grad_(False).eval()
        held["model"] = model
        return model

    def make_optimizer(model, cfg, plan):
        optimizer = base.make_optimizer(model, cfg, plan)
        scale_lrs(optimizer, cfg.init_lr_frac)
        return optimizer

    def make_data(cfg, tok, tok_file, device, rt, show_progress):
        loader = Rollouts(held["task"], tok, cfg, held, rt.rank, rt.world_size, device)
        held["loader"], held["cfg"], held["runtime"] = loader, cfg, rt
        val = []                           # the val bpb of the held-out reference answers
        if held["evals"]:
            val = fixed_batches(TaskMixture(held["evals"]), tok, cfg.num_samples, cfg.sequence_len, cfg.eval_tokens,
                                rt.rank, rt.world_size, device)
        return loader, val

    def extra_eval(model, step):
        cfg, rt, loader = held["cfg"], held["runtime"], held["loader"]
        out = {}
        if loader.rewards:
            mean = rt.sum([sum(loader.rewards), len(loader.rewards)])
            out["reward"] = mean[0] / max(1.0, mean[1])
            loader.rewards = []
        out.update(score(model, held["tok"], held["evals"], cfg.max_new_tokens, rt))              # greedy
        sampled = score(model, held["tok"], held["evals"], cfg.max_new_tokens, rt, num_samples=cfg.pass_k,
                        temperature=cfg.temperature, seed=cfg.seed + step)
        out.update({k if "pass@" in k else f"{k}_pass@1": v for k, v in sampled.items()})
        return out

    def checkpoint_meta(cfg):
        return {"stage": "rl", "started_from": str(find_checkpoint(cfg.sft).path)}

    return dataclasses.replace(base, derive=derive, make_model=make_model, make_optimizer=make_optimizer,
                               make_data=make_data, extra_eval=extra_eval, checkpoint_meta=checkpoint_meta)
# --8<-- [end:recipe]


def rl(cfg, resume: bool = False, show_progress: bool = True, out=sys.stdout,
       launch: dict | None = None) -> RunResult:
    """RL on this process alone, or on every rank when launched by torchrun (Phase 4)."""
    start_meta(cfg.sft, "sft")                        # a missing or broken starting run: say so first
    return p4recipe.train(cfg, resume=resume, show_progress=show_progress, out=out, base=recipe(),
                          launch=launch)   # launch: the command line that started it, for the resume helper


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser)
    parser.add_argument("--sft", help="the run to start from (a run name, run folder or step folder)")
    parser.add_argument("--task", help="problems to practise on, e.g. \"arithmetic:5000\" (see mixture.py)")


def run(args: argparse.Namespace) -> RunResult:
    return run_training(args, load_config, rl, FLAGS + ("sft", "task"))


if __name__ == "__main__":
    from phases.common.console import command
    from phases.phase4_ddp.dist import report_and_exit
    sys.exit(command("Reinforcement learning (Phase 8) on Phase 2's loop, from a fine-tuned run.", add_arguments,
                     run, runner=report_and_exit))
