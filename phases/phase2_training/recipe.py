"""The loop's extension points: a ``Recipe`` of typed parts, and the ``Runtime`` of this process.

Phase 2's loop (``train.py``) never changes; later phases change what it runs by handing it a
``Recipe``. Each part is a ``typing.Protocol``, so its signature is written in code, checked
by a type checker, and shown in the lesson:

- ``derive(cfg, vocab_size, runtime) -> Plan``: check the config, work out the model and the
  batch arithmetic. The loop trains ``plan.config`` (Phase 3 fills in the -1 values there);
- ``make_model(plan, device, dtype, seed) -> GPT``: fresh weights (Phase 8: a pretrained
  checkpoint instead);
- ``make_optimizer(model, cfg, plan)`` and ``set_hparams(optimizer, step, cfg, lrm)``: the
  optimizer and what changes before each step (Phase 3: MuonAdamW and its schedules);
- ``make_data(cfg, tok, tok_file, device, runtime, show_progress) -> (loader, val_batches)``:
  the training stream and fixed validation batches (Phase 5: the packed streaming loader);
- ``extra_eval(model, step) -> dict``: more numbers at every evaluation, logged and printed
  (Phase 8: chat evaluations during fine-tuning);
- ``checkpoint_meta(cfg) -> dict``: more keys for every checkpoint's ``meta.json`` (Phase 8:
  ``{"stage": "sft"}``, so a server can tell a chat model from a base model);
- ``runtime``: which rank this process is and how ranks talk (Phase 4: torchrun's ranks).

``Runtime`` is passed to ``derive`` and ``make_data``, so no part reads rank information
from globals. Alone, the runtime is rank 0 of 1 and every hook is a no-op.

What it leaves out: the loop itself (``train.py``); a plugin registry (a recipe is a plain
dataclass: ``dataclasses.replace(base, make_data=...)``).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from phases.common.paths import data_dir
from phases.phase0_tokenizer.bpe import BPETokenizer
from phases.phase0_tokenizer.shards import check_folder
from phases.phase1_transformer.model import GPT
from phases.phase2_training.config import TrainConfig
from phases.phase2_training.data import TokenLoader, eval_batches, tokenize_split
from phases.phase2_training.plan import Plan
from phases.phase2_training.plan import derive as derive_batch

Batch = tuple[torch.Tensor, torch.Tensor]  # (inputs, targets), each (B, T) int64


# --8<-- [start:runtime]
class Runtime:
    """Where this process stands among the ranks of a run. Phase 2 runs alone: rank 0 of 1.

    Phase 4 subclasses it with real collectives; the loop only ever calls these hooks, so
    one loop serves one process and many.
    """

    def __init__(self, rank: int = 0, world_size: int = 1):
        self.rank, self.world_size = rank, world_size

    @property
    def is_master(self) -> bool:
        """Rank 0 alone prints, logs metrics, samples and writes checkpoint files."""
        return self.rank == 0

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        return model                                  # Phase 4: DistributedDataParallel(model)

    def sync_gradients(self, trained: torch.nn.Module, last_micro: bool):
        return contextlib.nullcontext()               # Phase 4: no_sync() except on the last micro-batch

    def sum(self, values: list[float]) -> list[float]:
        return list(values)                           # Phase 4: all_reduce(SUM) over ranks

    def max(self, value: float) -> float:
        return value                                  # Phase 4: all_reduce(MAX): every rank agrees

    def barrier(self) -> None:
        pass

    def gather(self, obj) -> list:
        return [obj]                                  # Phase 4: all_gather_object: every rank's obj
# --8<-- [end:runtime]


# --8<-- [start:protocols]
class Loader(Protocol):
    """A training stream whose position is part of every checkpoint."""
    def next_batch(self) -> Batch: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


class Derive(Protocol):
    def __call__(self, cfg: TrainConfig, vocab_size: int, runtime: Runtime) -> Plan: ...


class MakeModel(Protocol):
    def __call__(self, plan: Plan, device: torch.device, dtype: torch.dtype | None, seed: int) -> GPT: ...


class MakeOptimizer(Protocol):
    def __call__(self, model: GPT, cfg: TrainConfig, plan: Plan) -> torch.optim.Optimizer: ...


class SetHparams(Protocol):
    def __call__(self, optimizer: torch.optim.Optimizer, step: int, cfg: TrainConfig, lrm: float) -> None: ...


class MakeData(Protocol):
    def __call__(self, cfg: TrainConfig, tok: BPETokenizer, tok_file: Path | None, device: torch.device,
                 runtime: Runtime, show_progress: bool) -> tuple[Loader, list[Batch]]: ...


class ExtraEval(Protocol):
    def __call__(self, model: GPT, step: int) -> dict[str, float]: ...


class CheckpointMeta(Protocol):
    def __call__(self, cfg: TrainConfig) -> dict: ...
# --8<-- [end:protocols]


# -- Phase 2's parts ------------------------------------------------------------------------

def derive(cfg: TrainConfig, vocab_size: int, runtime: Runtime) -> Plan:
    """Phase 2's plan: the config as given, the batch split over ``runtime.world_size`` ranks."""
    return derive_batch(cfg, vocab_size, runtime.world_size)


def make_model(plan: Plan, device: torch.device, dtype: torch.dtype | None, seed: int) -> GPT:
    """Fresh weights from the plan's model config (Phase 1's initialisation, seeded)."""
    return GPT.build(plan.model, device=device, dtype=dtype, seed=seed)


# --8<-- [start:param_groups]
def param_groups(model: GPT, cfg: TrainConfig) -> list[dict]:
    """One AdamW group per kind of parameter; each remembers its initial_lr for the schedule."""
    kinds: dict[str, list] = {"matrix": [], "embedding": [], "unembedding": [], "scalar": []}
    for name, p in model.named_parameters():
        if name.startswith(("wte.", "value_embeds.")):
            kinds["embedding"].append(p)
        elif name.startswith("lm_head."):
            kinds["unembedding"].append(p)
        elif name.startswith("blocks.") and p.ndim == 2:
            kinds["matrix"].append(p)
        else:                                   # lambdas, smear gate: a handful of numbers
            kinds["scalar"].append(p)
    lrs = {"matrix": cfg.matrix_lr, "embedding": cfg.embedding_lr,
           "unembedding": cfg.unembedding_lr, "scalar": cfg.scalar_lr}
    return [{"params": ps, "lr": lrs[k], "initial_lr": lrs[k], "kind": k,
             "weight_decay": cfg.weight_decay if k == "matrix" else 0.0}
            for k, ps in kinds.items() if ps]
# --8<-- [end:param_groups]


def make_adamw(model: GPT, cfg: TrainConfig, plan: Plan) -> torch.optim.Optimizer:
    return torch.optim.AdamW(param_groups(model, cfg), betas=(cfg.adam_beta1, cfg.adam_beta2), eps=1e-10)


def set_lr(optimizer: torch.optim.Optimizer, step: int, cfg: TrainConfig, lrm: float) -> None:
    """Hyperparameters of step ``step``: every group's LR follows the schedule's multiplier."""
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * lrm


def make_data(cfg: TrainConfig, tok: BPETokenizer, tok_file: Path | None, device: torch.device,
              runtime: Runtime, show_progress: bool) -> tuple[TokenLoader, list[Batch]]:
    """The training stream (this rank's rows of every batch) and fixed validation batches."""
    folder = resolve_data_dir(cfg, show_progress)
    train_tokens = tokenize_split(tok, tok_file, folder, "train", show_progress=show_progress)
    val_tokens = tokenize_split(tok, tok_file, folder, "val", show_progress=show_progress)
    rank, world = runtime.rank, runtime.world_size
    loader = TokenLoader(train_tokens, cfg.device_batch_size, cfg.sequence_len, rank, world, device=device)
    val = eval_batches(val_tokens, cfg.device_batch_size, cfg.sequence_len, cfg.eval_tokens, rank, world,
                       device=device)
    return loader, val


def resolve_data_dir(cfg: TrainConfig, show_progress: bool) -> Path:
    """``cfg.data_dir``, or the embedded corpus (built on first use)."""
    if cfg.data_dir:
        folder = Path(cfg.data_dir).expanduser()
        check_folder(folder)                 # every shard's footer: a broken one is named before training
        return folder
    from phases.phase0_tokenizer.corpus import ensure_embedded_corpus
    return Path(ensure_embedded_corpus(data_dir("embedded"), show_progress=show_progress).out_dir)


def no_extra_eval(model: GPT, step: int) -> dict[str, float]:
    return {}


def no_checkpoint_meta(cfg: TrainConfig) -> dict:
    return {}


# --8<-- [start:recipe]
@dataclass
class Recipe:
    """The parts of a run that later phases replace; the loop itself stays as it is."""
    derive: Derive = derive                               # Phase 3: auto-scaling from the depth
    make_model: MakeModel = make_model                    # Phase 8: start from a pretrained checkpoint
    make_optimizer: MakeOptimizer = make_adamw            # Phase 3: MuonAdamW
    set_hparams: SetHparams = set_lr                      # Phase 3: + Muon momentum, weight decay
    make_data: MakeData = make_data                       # Phase 5: streaming, BOS-aligned packing
    extra_eval: ExtraEval = no_extra_eval                 # Phase 8: chat evaluations
    checkpoint_meta: CheckpointMeta = no_checkpoint_meta  # Phase 8: {"stage": "sft"} in meta.json
    runtime: Runtime = field(default_factory=Runtime)     # Phase 4: torchrun's ranks
# --8<-- [end:recipe]


def data_state_for(saved: dict, rank: int, world_size: int) -> dict:
    """This rank's loader state from a checkpoint's ``data_state``.

    One process saves its loader's state as is; W ranks save ``{"per_rank": [state_0, ...]}``.
    Resuming with another world size hands the loader rank 0's state and lets the loader
    decide: Phase 2's position is global (every rank's is the same), Phase 5's refuses.
    """
    if "per_rank" not in saved:
        return saved
    states = saved["per_rank"]
    return states[rank] if len(states) == world_size else states[0]


def describe_data_state(state) -> str:
    """A checkpoint's ``data_state`` for the eye, one short line: a long list (Phase 5's buffer of
    document ranges) shows as its length, ``per_rank`` states one after another."""
    if isinstance(state, dict):
        return ", ".join(f"{k}={describe_data_state(v)}" for k, v in state.items())
    if isinstance(state, list) and state and all(isinstance(x, dict) for x in state):
        return " | ".join(f"[{describe_data_state(x)}]" for x in state)
    return f"<{len(state)} entries>" if isinstance(state, list) and len(state) > 4 else repr(state)
