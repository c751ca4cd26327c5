"""The pretraining loop: Phase 0's tokens + Phase 1's GPT -> a trained checkpoint.

One optimizer step = ``grad_accum`` micro-batches, each forward + backward with the loss
divided by ``grad_accum`` (so the gradient is the mean over the whole batch), then the
learning rates are set from the schedule, AdamW steps and the gradients are cleared.
Around it: validation bpb every ``eval_every`` steps, samples, a debiased EMA of the
training loss, tokens/s, MFU and ETA on the console and in ``metrics.jsonl``, and atomic
checkpoints every ``save_every`` steps. ``resume=True`` continues from the latest good
checkpoint; on CPU float32 the resumed run is bitwise identical to an uninterrupted one.
Ctrl-C saves a checkpoint of the last completed step before exiting.

What it leaves out: several processes (Phase 4), Muon and depth auto-scaling (Phase 3),
the streaming packer (Phase 5). Those phases plug in through a ``Recipe`` (how to derive
the plan, build the optimizer, set its hyperparameters each step, build the data streams,
and the ``Runtime``: which rank this process is and how ranks talk) instead of editing
this loop. Alone, the runtime is rank 0 of 1 and every one of its hooks does nothing.

Run: ``mini-nanochat pretrain --config examples/cpu_demo.toml`` (or ``train(TrainConfig())``).
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from phases.phase0_tokenizer.bpe import FILENAME, BPETokenizer
from phases.phase0_tokenizer.common import UserError, base_dir
from phases.phase0_tokenizer.corpus import ensure_embedded_corpus
from phases.phase1_transformer.model import GPT
from phases.phase2_training.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from phases.phase2_training.config import Plan, TrainConfig, derive
from phases.phase2_training.data import TokenLoader, eval_batches, tokenize_split
from phases.phase2_training.evaluate import evaluate_bpb, sample, token_byte_lengths
from phases.phase2_training.metrics import MetricsLog, StepTimer, peak_flops
from phases.phase2_training.schedule import lr_multiplier


@dataclass
class RunResult:
    run_dir: Path
    step: int
    val_bpb: float
    min_val_bpb: float
    samples: list = field(default_factory=list)
    tok_per_s: float = 0.0
    mfu: float = 0.0
    train_time: float = 0.0


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


def make_data(cfg: TrainConfig, tok: BPETokenizer, tok_file: Path, device: torch.device,
              show_progress: bool, rank: int = 0, world_size: int = 1):
    """The training stream (next_batch/state_dict/load_state_dict) and fixed validation batches."""
    if cfg.data_dir:
        data_dir = Path(cfg.data_dir).expanduser()
    else:
        data_dir = Path(ensure_embedded_corpus(show_progress=show_progress).out_dir)
    train_tokens = tokenize_split(tok, tok_file, data_dir, "train", show_progress=show_progress)
    val_tokens = tokenize_split(tok, tok_file, data_dir, "val", show_progress=show_progress)
    loader = TokenLoader(train_tokens, cfg.device_batch_size, cfg.sequence_len, rank, world_size, device=device)
    val = eval_batches(val_tokens, cfg.device_batch_size, cfg.sequence_len, cfg.eval_tokens,
                       rank, world_size, device=device)
    return loader, val


# --8<-- [start:runtime]
class Runtime:
    """Where this process stands among the ranks of a run. Phase 2 runs alone: rank 0 of 1.

    Phase 4 subclasses it with real collectives; the loop only ever calls these hooks, so
    one loop serves one process and many.
    """
    rank: int = 0
    world_size: int = 1

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
# --8<-- [end:runtime]


class _Discard(io.TextIOBase):
    """Where the console of ranks other than 0 goes."""

    def write(self, text: str) -> int:
        return len(text)


class _NoLog:
    """The metrics log of ranks other than 0: one run, one metrics.jsonl."""

    def write(self, record: dict) -> None:
        pass

    def truncate_after(self, step: int) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class Recipe:
    """The parts of a run that later phases replace; the loop itself stays as it is.

    Phase 3 swaps in MuonAdamW, its momentum/weight-decay schedules and the depth
    auto-scaling; Phase 5 swaps in the streaming packer.
    """
    derive: Callable[..., Plan] = derive                  # (cfg, vocab_size) -> Plan
    make_optimizer: Callable = make_adamw                 # (model, cfg, plan) -> optimizer
    set_hparams: Callable = set_lr                        # (optimizer, step, cfg, lrm) -> None
    make_data: Callable = make_data                       # (cfg, tok, tok_file, device, show_progress)
    runtime: Runtime = field(default_factory=Runtime)     # rank 0 of 1; Phase 4: torchrun's ranks


def _device(cfg: TrainConfig) -> torch.device:
    if cfg.device:
        if cfg.device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"device {cfg.device!r} asked for, but CUDA is not available")
        return torch.device(cfg.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _dtype(cfg: TrainConfig, device: torch.device):
    if not cfg.dtype:
        return None  # Phase 1's policy
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if cfg.dtype not in table:
        raise UserError(f"dtype must be one of {', '.join(table)}, got {cfg.dtype!r}")
    return table[cfg.dtype]


def run_dir_of(cfg: TrainConfig) -> Path:
    return Path(cfg.run_dir).expanduser() if cfg.run_dir else base_dir() / "runs" / cfg.run_name


def load_tokenizer(cfg: TrainConfig) -> tuple[BPETokenizer, Path]:
    tok_dir = Path(cfg.tokenizer_dir).expanduser() if cfg.tokenizer_dir else base_dir() / "tokenizer"
    return BPETokenizer.load(tok_dir), tok_dir / FILENAME


def train(cfg: TrainConfig, resume: bool = False, show_progress: bool = True,
          out=sys.stdout, recipe: Recipe | None = None) -> RunResult:
    recipe = recipe or Recipe()
    rt = recipe.runtime
    if not rt.is_master:                      # rank 0 speaks for the run
        out, show_progress = _Discard(), False
    say = (lambda *a: print(*a, file=out, flush=True))
    device = _device(cfg)
    tok, tok_file = load_tokenizer(cfg)
    plan: Plan = recipe.derive(cfg, tok.vocab_size)
    run_dir = run_dir_of(cfg)
    ckpt_dir = run_dir / "checkpoints"
    start = latest_checkpoint(ckpt_dir) if resume else None
    if resume and start is None:
        raise UserError(f"nothing to resume: no good checkpoint in {ckpt_dir}")
    if not resume and list_checkpoints(ckpt_dir):
        raise UserError(f"{run_dir} already holds checkpoints; pass --resume to continue it, "
                        "or choose another run_name / run_dir")

    # -- data -------------------------------------------------------------------
    loader, val = recipe.make_data(cfg, tok, tok_file, device, show_progress)
    token_bytes = token_byte_lengths(tok, device)

    # -- model and optimizer ---------------------------------------------------------
    torch.manual_seed(cfg.seed)
    model = GPT.build(plan.model, device=device, dtype=_dtype(cfg, device), seed=cfg.seed)
    plan.num_params = model.param_counts()["total"]
    plan.flops_per_token = model.estimate_flops()
    optimizer = recipe.make_optimizer(model, cfg, plan)
    loop = {"smooth_loss": 0.0, "min_val_bpb": math.inf, "train_time": 0.0, "val_bpb": math.nan}
    step = 0
    if start is not None:
        saved = start.meta
        if saved["model_config"] != dataclasses.asdict(plan.model):
            raise UserError(f"{start.path} was made with another model configuration; "
                            "resume with the same model settings")
        if saved["total_batch_size"] != plan.total_batch_size:
            raise UserError(f"{start.path} used total_batch_size {saved['total_batch_size']:,}; keep it to resume")
        load_checkpoint(start, model, optimizer, device)
        loader.load_state_dict(data_state_for(saved["data_state"], rt.rank, rt.world_size))
        loop.update(saved["loop_state"])
        step = start.step
    trained = rt.wrap(model)                  # DDP (Phase 4) wraps before compiling
    trained = torch.compile(trained) if cfg.compile else trained

    say(f"run directory: {run_dir}")
    say(f"device: {device}, compute dtype: {str(model.compute_dtype).removeprefix('torch.')}")
    say(plan.describe())
    if start is not None:
        say(f"resuming from {start.path} (step {step})")
    peak = cfg.peak_flops or (peak_flops(device, model.compute_dtype) if rt.is_master else 1.0)
    say(f"MFU is measured against a peak of {peak:.3g} FLOP/s" + (f" per rank, x {rt.world_size} ranks"
                                                                  if rt.world_size > 1 else ""))
    peak *= rt.world_size
    log = (MetricsLog(run_dir, tensorboard=cfg.tensorboard, wandb=cfg.wandb, config=dataclasses.asdict(cfg))
           if rt.is_master else _NoLog())
    log.truncate_after(step)  # records of steps that a crash lost are dropped
    timer = StepTimer(show_progress, cfg.log_every, out)

    def checkpoint(at_step: int, data_state: dict) -> None:
        # every rank: a sharded optimizer gathers its state here (a collective)
        optimizer_state = optimizer.state_dict()
        states = rt.gather(data_state)                            # each rank's loader position
        if rt.world_size > 1:
            data_state = {"per_rank": states}
        if not rt.is_master:
            rt.barrier()                                          # wait until rank 0 has written it
            return
        meta = {"model_config": dataclasses.asdict(plan.model), "train_config": dataclasses.asdict(cfg),
                "total_batch_size": plan.total_batch_size, "vocab_size": tok.vocab_size,
                "val_bpb": loop["val_bpb"], "loop_state": dict(loop), "data_state": data_state,
                "tokenizer": str(tok_file), "torch": torch.__version__}
        path = save_checkpoint(ckpt_dir, at_step, model, optimizer, meta, cfg.keep_last, optimizer_state)
        log.write({"event": "checkpoint", "step": at_step, "path": str(path)})
        rt.barrier()

    result = RunResult(run_dir, step, math.nan, loop["min_val_bpb"])
    start_step = step
    while True:
        last = step >= cfg.num_iterations or (cfg.max_seconds > 0 and loop["train_time"] >= cfg.max_seconds)
        # -- evaluate, sample, save (never counted as training time) ----------------------
        if last or (cfg.eval_every > 0 and step % cfg.eval_every == 0):
            model.eval()
            bpb, nats, nbytes = evaluate_bpb(trained, val, token_bytes)
            if rt.world_size > 1:                                 # each rank saw its shard of val
                nats, nbytes = rt.sum([nats, nbytes])
                bpb = nats / (math.log(2) * nbytes) if nbytes else math.nan
            model.train()
            loop["val_bpb"], loop["min_val_bpb"] = bpb, min(loop["min_val_bpb"], bpb)
            log.write({"event": "eval", "step": step, "val_bpb": bpb})
            timer.message(f"step {step:5d} | val bpb {bpb:.4f}")
        if rt.is_master and (last or (cfg.sample_every > 0 and step % cfg.sample_every == 0 and step > 0)):
            samples = sample(model, tok, max_tokens=cfg.sample_tokens)
            log.write({"event": "samples", "step": step, "samples": samples})
            for prompt, text in samples:
                timer.message(f"  sample: {prompt!r} -> {text!r}")
            result.samples = samples
        if step > start_step and (last or (cfg.save_every > 0 and step % cfg.save_every == 0)):
            checkpoint(step, loader.state_dict())
        if last:
            break
        # -- one optimizer step -------------------------------------------------------------
        data_state = loader.state_dict()
        updating = False
        try:
            t0 = time.perf_counter()
            loss_sum = torch.zeros((), device=device)
            for micro in range(plan.grad_accum):
                x, y = loader.next_batch()
                with rt.sync_gradients(trained, last_micro=micro == plan.grad_accum - 1):
                    loss = trained(x, targets=y) / plan.grad_accum   # mean over the whole batch
                    loss.backward()
                loss_sum += loss.detach()
            lrm = lr_multiplier(step, cfg.num_iterations, cfg.warmup_steps, cfg.warmdown_ratio, cfg.final_lr_frac)
            recipe.set_hparams(optimizer, step, cfg, lrm)
            updating = True                                       # from here on the weights change
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            updating = False
            train_loss = loss_sum.item()                          # waits for the device: dt is honest
            dt = time.perf_counter() - t0
            if rt.world_size > 1:  # the mean over ranks, and the slowest rank's time: all ranks agree
                train_loss = rt.sum([train_loss])[0] / rt.world_size
                dt = rt.max(dt)
        except KeyboardInterrupt:
            if rt.world_size > 1:  # the ranks may be stopped at different points: no collective save
                timer.message(f"interrupted at step {step}: resume from the last saved checkpoint")
            elif not updating:  # weights, optimizer and data position are all still at `step`
                timer.message(f"interrupted: saving step {step} before exiting")
                optimizer.zero_grad(set_to_none=True)
                checkpoint(step, data_state)
            raise
        if not math.isfinite(train_loss):
            raise UserError(f"training diverged at step {step} (loss {train_loss}); lower the learning rates")
        step += 1
        loop["train_time"] += dt
        loop["smooth_loss"] = 0.9 * loop["smooth_loss"] + 0.1 * train_loss
        smooth = loop["smooth_loss"] / (1 - 0.9 ** step)          # debiased EMA
        tok_per_s = plan.total_batch_size / dt
        mfu = plan.flops_per_token * tok_per_s / peak
        remaining = cfg.num_iterations - step
        if cfg.max_seconds > 0:
            remaining = min(remaining, (cfg.max_seconds - loop["train_time"]) / max(dt, 1e-9))
        record = {"event": "step", "step": step, "loss": train_loss, "smooth_loss": smooth, "lrm": lrm,
                  "dt": dt, "tok_per_s": tok_per_s, "mfu": mfu, "train_time": loop["train_time"],
                  "tokens": step * plan.total_batch_size}
        log.write(record)
        timer.step(step, cfg.num_iterations, smooth, lrm, dt, tok_per_s, mfu, max(0.0, remaining) * dt)
        result.tok_per_s, result.mfu = tok_per_s, mfu
    timer.close()
    log.close()
    result.step, result.val_bpb, result.min_val_bpb = step, loop["val_bpb"], loop["min_val_bpb"]
    result.train_time = loop["train_time"]
    return result
