"""Supervised fine-tuning on Phase 2's loop: a base model learns to answer in turns.

Nothing here is a training loop. SFT is pretraining's recipe (``phases/phase5_data/
pretrain.py``: Phase 3's MuonAdamW, Phase 4's ranks, Phase 2's checkpoints and exact
resume) with five parts swapped, nanochat's ``chat_sft.py`` choices as defaults:

- ``derive``: the model, batch and learning rates are the base run's (read from its
  ``meta.json``; anything set in the TOML file or on the command line wins); the horizon is
  one epoch of the mixture unless ``num_iterations`` says otherwise; every value is printed;
- ``make_model``: the base checkpoint's weights instead of fresh ones;
- ``make_optimizer``: Phase 3's MuonAdamW, started from the base run's optimizer state
  (its momentum buffers; ``load_optimizer``), every learning rate times ``init_lr_frac``
  (0.8), Muon's weight decay 0, the schedule flat then a linear warmdown to 0 over the
  last half (``warmdown_ratio`` 0.5, ``final_lr_frac`` 0), Muon's momentum 0.85 -> 0.95;
- ``make_data``: conversation rows (``rows.py``: whole conversations, best-fit, padded,
  only assistant tokens as targets) of the mixture (``mixture.py``), and validation rows of
  its held-out split: the val bpb is over assistant tokens only;
- ``extra_eval``: at every evaluation, held-out problems solved with the calculator
  (Phase 7's ``run_generative`` through Phase 6's engine), e.g. ``arithmetic 0.83``.

What it leaves out: LoRA and other parameter-efficient methods (every weight trains),
sequence packing with attention masks between conversations (nanochat has none either).

Run: ``mini-nanochat sft --config examples/cpu_sft.toml [--base RUN]``, or
``python -m phases.phase8_sft.sft --config examples/cpu_sft.toml`` (the same flags).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from dataclasses import dataclass

import torch

from phases.common.console import UserError
from phases.phase1_transformer.model import GPT
from phases.phase2_training import config as p2config
from phases.phase2_training.checkpoint import load_weights
from phases.phase2_training.cli import FLAGS, add_training_arguments, run_training
from phases.phase2_training.load import find_checkpoint
from phases.phase2_training.recipe import Recipe, Runtime
from phases.phase2_training.train import RunResult, load_tokenizer
from phases.phase4_ddp import recipe as p4recipe
from phases.phase5_data.pretrain import PretrainConfig, pretrain_recipe
from phases.phase8_sft import mixture as mixtures
from phases.phase8_sft.rows import ConversationRows, count_rows, fixed_batches

OFFLINE_MIXTURE = "arithmetic:3000, spelling:500, stdlib:500, identity:200, followups:600"

# Keys a fine-tuning run takes from the run it starts from: the model must be the same, and
# the batch and learning rates are the ones the weights were trained with.
MODEL_KEYS = ("depth", "aspect_ratio", "head_dim", "sequence_len", "window_pattern", "n_kv_head", "value_embeds",
              "resid_scalars", "smear", "backout", "qk_norm", "softcap")
INHERITED = MODEL_KEYS + (
    "tokenizer_dir", "device_batch_size", "total_batch_size", "reference_batch_size", "optimizer", "matrix_lr",
    "embedding_lr", "unembedding_lr", "scalar_lr", "adamw_matrix_lr", "adam_beta1", "adam_beta2", "ns_steps",
    "ns_coefficients", "ns_method", "ns_precondition", "gram_restart", "muon_plus", "normuon", "muon_beta2",
    "cautious_wd")


# --8<-- [start:keys]
@dataclass
class SFTKeys:
    """SFT's own keys, and nanochat's SFT values for pretraining keys (a later default wins)."""
    base: str = ""                   # the pretrained run: a run name, run folder or step folder
    load_optimizer: bool = True      # start from the base run's optimizer state (momentum buffers)
    init_lr_frac: float = 0.8        # every group's learning rate x this
    mixture: str = OFFLINE_MIXTURE   # what to train on (mixture.py's spec)
    val_per_task: int = 100          # held-out conversations per task for the val bpb
    row_buffer: int = 100            # conversations the best-fit packer chooses from
    eval_tasks: str = "arithmetic:100"  # held-out problems scored at every evaluation ("" = none)
    eval_max_tokens: int = 64        # tokens a scored answer may take
    num_iterations: int = -1         # -1 = one epoch of the mixture
    warmup_steps: int = 0
    warmdown_ratio: float = 0.5      # flat, then linear to final_lr_frac over the last half
    final_lr_frac: float = 0.0
    weight_decay: float = 0.0        # pretraining already annealed it to 0
    muon_momentum_start: float = 0.85
    muon_momentum: float = 0.95
    muon_momentum_end: float = 0.95
    muon_momentum_warmup: int = 300
    eval_every: int = 200
    sample_every: int = 0
    save_every: int = 200
    run_name: str = "sft"
# --8<-- [end:keys]
SFTKeys.limits = {"init_lr_frac": p2config.at_least(0), "val_per_task": p2config.at_least(1),
                  "row_buffer": p2config.at_least(1), "eval_max_tokens": p2config.at_least(1)}


SFTConfig = p2config.compose("SFTConfig", PretrainConfig, SFTKeys, module=__name__)


def start_meta(run: str, what: str = "base") -> dict:
    """The ``meta.json`` of the checkpoint a fine-tuning run starts from."""
    if not run:
        raise UserError(f"which run should this start from? set {what} (--{what} RUN or {what} = \"RUN\" in the TOML)")
    return find_checkpoint(run).meta


def inherit(cls, path=None, overrides: dict | None = None, start_key: str = "base"):
    """Defaults < the starting run's model, batch and LRs < the TOML file < overrides."""
    first = p2config.load_config(path, overrides, cls=cls)
    start = getattr(first, start_key)
    if not start:
        return first
    saved = start_meta(start, start_key).get("train_config", {})
    keys = {f.name: f for f in dataclasses.fields(cls)}
    fields = [(k, keys[k].type, dataclasses.field(default=saved[k])) for k in INHERITED
              if k in saved and k in keys and type(saved[k]) is type(keys[k].default)]
    inherited = dataclasses.make_dataclass("Inherited", fields)
    return p2config.load_config(path, overrides, cls=p2config.compose(cls.__name__, cls, inherited, module=cls.__module__))


def load_config(path=None, overrides: dict | None = None):
    return inherit(SFTConfig, path, overrides)


def check_same_model(plan, meta: dict, start: str) -> None:
    if meta["model_config"] != dataclasses.asdict(plan.model):
        diff = {k: (v, dataclasses.asdict(plan.model).get(k)) for k, v in meta["model_config"].items()
                if dataclasses.asdict(plan.model).get(k) != v}
        raise UserError(f"{start} has another model than this config asks for ({diff}: checkpoint vs config); "
                        "leave the model keys out of the config to use the checkpoint's")


def load_start(model: GPT, start: str, device) -> GPT:
    weights = load_weights(find_checkpoint(start).path, device, finite=True)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise UserError(f"{start} does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model


def scale_lrs(optimizer, frac: float) -> None:
    for g in optimizer.param_groups:               # the schedule multiplies initial_lr every step
        g["initial_lr"] *= frac
        g["lr"] *= frac


def load_optimizer_state(optimizer, start: str, device) -> None:
    """The starting run's optimizer state (momentum buffers), keeping this run's hyperparameters."""
    state = torch.load(find_checkpoint(start).path / "optim.pt", map_location=device, weights_only=True)["optimizer"]
    mine = optimizer.state_dict()
    if [len(g["params"]) for g in state["param_groups"]] != [len(g["params"]) for g in mine["param_groups"]]:
        raise UserError(f"the optimizer of {start} has other parameter groups; set load_optimizer = false")
    optimizer.load_state_dict({"state": state["state"], "param_groups": mine["param_groups"]})


def describe_with(plan, lines: list[str]):
    """``plan`` whose ``describe()`` ends with ``lines`` (the loop prints it at the start)."""
    before = plan.describe
    plan.describe = lambda: before() + "\n" + "\n".join(lines)
    return plan


# --8<-- [start:recipe]
def recipe(base: Recipe | None = None, train=None, val=None, evals=None) -> Recipe:
    """``base`` (default: pretraining's) turned into supervised fine-tuning from ``cfg.base``.

    ``train`` / ``val`` (sequences of conversations) and ``evals`` (scored tasks) replace
    what ``cfg.mixture`` and ``cfg.eval_tasks`` name: fine-tune on data of your own.
    """
    base = base or pretrain_recipe()
    built: dict = {}                                 # the mixtures, built once per process

    def data(cfg, rt: Runtime):
        if "train" not in built:
            built.update(tok=load_tokenizer(cfg)[0],
                         train=train if train is not None else mixtures.build(cfg.mixture, "train", seed=cfg.seed),
                         val=val if val is not None else mixtures.build(cfg.mixture, "test", seed=cfg.seed,
                                                                        per_task=cfg.val_per_task),
                         evals=evals if evals is not None else
                         [mixtures.task_of(e, "test") for e in mixtures.parse_spec(cfg.eval_tasks)]
                         if cfg.eval_tasks else [])
        return built

    def derive(cfg, vocab_size, rt):
        meta = start_meta(cfg.base)
        d = data(cfg, rt)
        plan = base.derive(cfg.replace(num_iterations=max(cfg.num_iterations, 1)), vocab_size, rt)
        key = ("rows", cfg.sequence_len, cfg.row_buffer, rt.rank, rt.world_size)
        if key not in built:                          # renders every conversation once: count it once
            built[key] = count_rows(d["train"], d["tok"], cfg.sequence_len, cfg.row_buffer, rt.rank, rt.world_size)
        rows, stats = built[key]
        per_step = plan.config.device_batch_size * plan.grad_accum
        if cfg.num_iterations == -1:                  # one epoch of this rank's conversations
            plan = base.derive(cfg.replace(num_iterations=max(1, math.ceil(rows / per_step))), vocab_size, rt)
        check_same_model(plan, meta, cfg.base)
        counts = ", ".join(f"{k} {v:,}" for k, v in d["train"].counts().items()) if hasattr(d["train"], "counts") \
            else "given"
        return describe_with(plan, [
            "fine-tuning (SFT):",
            f"  from                {find_checkpoint(cfg.base).path} (optimizer state: "
            f"{'loaded' if cfg.load_optimizer else 'fresh'}), every LR x {cfg.init_lr_frac:g}",
            f"  mixture             {len(d['train']):,} conversations ({counts})",
            f"  rows                {rows:,} per epoch per rank of {cfg.sequence_len + 1} tokens, {per_step} per step "
            f"= {rows / per_step:.1f} steps per epoch; {stats.utilisation:.1%} of row tokens supervised, "
            f"{stats.fill:.1%} filled, {stats.dropped_long:,} conversations longer than a row dropped",
            f"  validation          {len(d['val']):,} held-out conversations (bpb of assistant tokens only)",
            f"  scored at each eval {', '.join(t.name for t in d['evals']) or 'nothing'} "
            "(held-out, greedy, with the calculator)"])

    def make_model(plan, device, dtype, seed):
        return load_start(GPT.build(plan.model, device=device, dtype=dtype, seed=seed), plan.config.base, device)

    def make_optimizer(model, cfg, plan):
        optimizer = base.make_optimizer(model, cfg, plan)
        if cfg.load_optimizer:
            load_optimizer_state(optimizer, cfg.base, next(model.parameters()).device)
        scale_lrs(optimizer, cfg.init_lr_frac)
        return optimizer

    def make_data(cfg, tok, tok_file, device, rt, show_progress):
        d = data(cfg, rt)
        train = ConversationRows(d["train"], tok, cfg.device_batch_size, cfg.sequence_len, rt.rank, rt.world_size,
                                 device, cfg.row_buffer)
        val = fixed_batches(d["val"], tok, cfg.device_batch_size, cfg.sequence_len, cfg.eval_tokens, rt.rank,
                            rt.world_size, device, cfg.row_buffer)
        built["cfg"], built["runtime"] = cfg, rt
        return train, val

    def extra_eval(model, step):
        return score(model, built["tok"], built.get("evals", []), built["cfg"].eval_max_tokens, built.get("runtime"))

    def checkpoint_meta(cfg):                         # Phase 9 serves the newest chat model by its stage
        return {"stage": "sft", "started_from": str(find_checkpoint(cfg.base).path)}

    return dataclasses.replace(base, derive=derive, make_model=make_model, make_optimizer=make_optimizer,
                               make_data=make_data, extra_eval=extra_eval, checkpoint_meta=checkpoint_meta)
# --8<-- [end:recipe]


def score(model, tok, tasks, max_tokens: int, runtime=None, num_samples: int = 1, temperature: float = 0.0,
          seed: int = 42) -> dict[str, float]:
    """Accuracy on each held-out task (``{name: accuracy}``, plus ``{name}_pass@k`` when sampling k)."""
    from phases.phase6_inference.engine import Engine
    from phases.phase7_eval.chat_eval import run_generative
    if not tasks:
        return {}
    was_training = model.training
    model.eval()
    out = {}
    try:
        engine = Engine(model, tok)
        for task in tasks:
            r = run_generative(engine, tok, task, runtime, num_samples=num_samples, max_new_tokens=max_tokens,
                               temperature=temperature, top_k=50 if temperature > 0 else None, seed=seed,
                               batch_problems=64)
            out[task.name] = r.pass_at.get(1, r.accuracy) if num_samples > 1 else r.accuracy
            for k, v in r.pass_at.items():
                if num_samples > 1 and k > 1:
                    out[f"{task.name}_pass@{k}"] = v
    finally:
        model.train(was_training)
    return out


def sft(cfg, resume: bool = False, show_progress: bool = True, out=sys.stdout,
        launch: dict | None = None) -> RunResult:
    """Fine-tune on this process alone, or on every rank when launched by torchrun (Phase 4)."""
    start_meta(cfg.base)                              # a missing or broken base run: say so first
    return p4recipe.train(cfg, resume=resume, show_progress=show_progress, out=out, base=recipe(),
                          launch=launch)   # launch: the command line that started it, for the resume helper


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser)
    parser.add_argument("--base", help="the pretrained run to start from (a run name, run folder or step folder)")
    parser.add_argument("--mixture", help=f"what to train on, e.g. \"{OFFLINE_MIXTURE}\" (see mixture.py)")


def run(args: argparse.Namespace) -> RunResult:
    return run_training(args, load_config, sft, FLAGS + ("base", "mixture"))


if __name__ == "__main__":
    from phases.common.console import command
    from phases.phase4_ddp.dist import report_and_exit
    sys.exit(command("Supervised fine-tuning (Phase 8) on Phase 2's loop, from a pretrained run.", add_arguments,
                     run, runner=report_and_exit))
