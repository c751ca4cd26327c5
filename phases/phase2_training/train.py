"""The pretraining loop: Phase 0's tokens + Phase 1's GPT -> a trained checkpoint.

One optimizer step = ``grad_accum`` micro-batches, each forward + backward with the loss
divided by ``grad_accum`` (so the gradient is the mean over the whole batch), then the
learning rates are set from the schedule, the optimizer steps and the gradients are cleared.
Around it: validation bpb every ``eval_every`` steps, samples, a debiased EMA of the
training loss, tokens/s, MFU and ETA on the console and in ``metrics.jsonl``, and atomic
checkpoints every ``save_every`` steps. ``resume=True`` continues from the latest good
checkpoint, falling back past any that cannot be read (each named in a warning); on CPU
float32 the resumed run is bitwise identical to an uninterrupted one, RNG state included.
Ctrl-C saves a checkpoint of the last completed step before exiting; ``stop_after_step = k``
saves step k and returns, so a run can be split into several sittings. Before any data is
read, the config is checked, the run folder created and the model's size checked against
the device's memory (``memory.check_fits``), so a mistake costs seconds, not minutes.

What it leaves out: several processes (Phase 4), Muon and depth auto-scaling (Phase 3),
the streaming packer (Phase 5), fine-tuning (Phase 8). Those phases plug in through a
``Recipe`` (``recipe.py``: typed parts for the plan, the model, the optimizer and its
hyperparameters, the data, extra evaluations, and the ``Runtime`` of this process) instead
of editing this loop. Its command line is ``cli.py`` (mounted by ``phases/phase5_data/pretrain.py``).

Run: ``mini-nanochat pretrain --config examples/cpu_demo.toml`` (or ``train(TrainConfig())``).
"""
from __future__ import annotations

import dataclasses
import io
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from phases.common.console import UserError
from phases.common.files import output_dir
from phases.common.paths import run_dir as named_run_dir
from phases.common.paths import tokenizer_dir
from phases.phase0_tokenizer.bpe import FILENAME, BPETokenizer
from phases.phase1_transformer.config import resolve_device
from phases.phase1_transformer.memory import check_fits
from phases.phase2_training.checkpoint import (META_FILE, CorruptCheckpoint, list_checkpoints, load_checkpoint,
                                               resume_candidates, save_checkpoint)
from phases.phase2_training.config import TrainConfig
from phases.phase2_training.dtype_probe import choose_cpu_dtype
from phases.phase2_training.evaluate import evaluate_bpb, sample, token_byte_lengths
from phases.phase2_training.metrics import MetricsLog, StepTimer, debias, eta_seconds, peak_flops
from phases.phase2_training.plan import Plan
from phases.phase2_training.recipe import Recipe, data_state_for
from phases.phase2_training.schedule import is_last_step, lr_multiplier, schedule_notes


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
    is_master: bool = True       # rank 0 (speaks for the run)
    stopped: bool = False        # stopped at stop_after_step, before num_iterations


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


def _device(cfg: TrainConfig) -> torch.device:
    return resolve_device(cfg.device)


def _dtype(cfg: TrainConfig, device: torch.device):
    if not cfg.dtype or cfg.dtype == "auto":
        return None  # Phase 1's policy ("auto": measured once the model exists, _auto_dtype)
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if cfg.dtype not in table:
        raise UserError(f"dtype must be one of {', '.join(table)}, got {cfg.dtype!r}")
    return table[cfg.dtype]


def _auto_dtype(model, device: torch.device, plan, start, rt, say) -> None:
    """``dtype = "auto"``: on a CPU, bf16 only where measured faster (dtype_probe); the choice is
    rank 0's, and a resumed run keeps the one it started with (resumed == uninterrupted)."""
    recorded = start.meta.get("compute_dtype") if start is not None else None
    if recorded in ("float32", "bfloat16"):
        model.compute_dtype = getattr(torch, recorded)
        say(f"compute dtype {recorded}, as measured when the run started (dtype = auto)")
        return
    if device.type != "cpu":
        return                                # Phase 1's policy knows GPUs
    choice = choose_cpu_dtype(model, rows=min(2, plan.config.device_batch_size)) if rt.is_master else None
    name = rt.gather(str(choice.dtype).removeprefix("torch.") if choice else None)[0]
    model.compute_dtype = getattr(torch, name)
    if choice is not None:
        say(f"{choice.describe()} (dtype = auto)")


def run_dir_of(cfg: TrainConfig) -> Path:
    """The run folder: ``cfg.run_dir``, else ``<base>/runs/<run_name>``."""
    return Path(cfg.run_dir).expanduser() if cfg.run_dir else named_run_dir(cfg.run_name)


def tokenizer_dir_of(cfg: TrainConfig) -> Path:
    """The tokenizer folder: ``cfg.tokenizer_dir``, else Phase 0's default."""
    return Path(cfg.tokenizer_dir).expanduser() if cfg.tokenizer_dir else tokenizer_dir()


def load_tokenizer(cfg: TrainConfig) -> tuple[BPETokenizer, Path]:
    tok_dir = tokenizer_dir_of(cfg)
    return BPETokenizer.load(tok_dir), tok_dir / FILENAME


def train(cfg: TrainConfig, resume: bool = False, show_progress: bool = True,
          out=sys.stdout, recipe: Recipe | None = None, launch: dict | None = None) -> RunResult:
    """Train ``cfg`` with ``recipe``'s parts. ``launch``: how the run was started (``{"config": the
    TOML file}``), kept in every checkpoint so the resume helper can print a short command."""
    recipe = recipe or Recipe()
    rt = recipe.runtime
    if not rt.is_master:                      # rank 0 speaks for the run
        out, show_progress = _Discard(), False
    say = (lambda *a: print(*a, file=out, flush=True))
    device = _device(cfg)
    tok, tok_file = load_tokenizer(cfg)
    plan: Plan = recipe.derive(cfg, tok.vocab_size, rt)
    cfg = plan.config                         # the config as derived: -1 values filled in
    check_fits(plan.model, device, rt.world_size)
    _dtype(cfg, device)
    run_dir = run_dir_of(cfg)
    ckpt_dir = run_dir / "checkpoints"
    if rt.is_master:                          # a path that is a file or unwritable: an error now, not at step 100
        output_dir(ckpt_dir, "run directory")
    pending = resume_candidates(ckpt_dir) if resume else iter(())
    start = next(pending, None)               # the newest checkpoint whose files verify
    if resume and start is None:
        raise UserError(f"nothing to resume: no good checkpoint in {ckpt_dir}")
    if not resume and list_checkpoints(ckpt_dir):
        raise UserError(f"{run_dir} already holds checkpoints; pass --resume to continue it, "
                        "or choose another run_name / run_dir")

    # -- data -------------------------------------------------------------------
    loader, val = recipe.make_data(cfg, tok, tok_file, device, rt, show_progress)
    token_bytes = token_byte_lengths(tok, device)

    # -- model and optimizer ---------------------------------------------------------
    torch.manual_seed(cfg.seed)
    model = recipe.make_model(plan, device, _dtype(cfg, device), cfg.seed)
    plan.num_params = model.param_counts()["total"]
    plan.flops_per_token = model.estimate_flops()
    optimizer = recipe.make_optimizer(model, cfg, plan)
    loop = {"smooth_loss": 0.0, "min_val_bpb": math.inf, "train_time": 0.0, "val_bpb": math.nan}
    step = 0
    while start is not None:                  # the newest checkpoint that loads; older ones if it does not
        saved = start.meta
        if saved["model_config"] != dataclasses.asdict(plan.model):
            raise UserError(f"{start.path} was made with another model configuration; "
                            "resume with the same model settings")
        if saved["total_batch_size"] != plan.total_batch_size:
            raise UserError(f"{start.path} used total_batch_size {saved['total_batch_size']:,}; keep it to resume")
        try:
            load_checkpoint(start, model, optimizer, device)
            try:
                loader.load_state_dict(data_state_for(saved["data_state"], rt.rank, rt.world_size))
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
                raise CorruptCheckpoint(f"{start.path / META_FILE}: its data_state cannot be restored ({e!r})") from None
        except CorruptCheckpoint as e:
            say(f"warning: skipping bad checkpoint: {e}")
            start = next(pending, None)
            if start is None:
                raise UserError(f"nothing to resume: no checkpoint in {ckpt_dir} can be loaded") from None
            continue
        loop.update(saved["loop_state"])
        step = start.step
        break
    if cfg.dtype == "auto":
        _auto_dtype(model, device, plan, start, rt, say)
    trained = rt.wrap(model)                  # DDP (Phase 4) wraps before compiling
    trained = torch.compile(trained) if cfg.compile else trained

    say(f"run directory: {run_dir}")
    say(f"device: {device}, compute dtype: {str(model.compute_dtype).removeprefix('torch.')}")
    say(plan.describe())
    for note in schedule_notes(cfg.num_iterations, cfg.warmup_steps, cfg.warmdown_ratio):
        say(f"warning: {note}")
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
        meta = {**recipe.checkpoint_meta(cfg),                    # a later phase's keys (Phase 8: stage)
                "model_config": dataclasses.asdict(plan.model), "train_config": dataclasses.asdict(cfg),
                "total_batch_size": plan.total_batch_size, "vocab_size": tok.vocab_size,
                "val_bpb": loop["val_bpb"], "loop_state": dict(loop), "data_state": data_state,
                "initial_lrs": {str(g.get("name", g.get("kind", i))): g["initial_lr"]
                                for i, g in enumerate(optimizer.param_groups) if "initial_lr" in g},
                "tokenizer": str(tok_file), "torch": torch.__version__, "launch": launch or {},
                "compute_dtype": str(model.compute_dtype).removeprefix("torch.")}
        path = save_checkpoint(ckpt_dir, at_step, model, optimizer, meta, cfg.keep_last, optimizer_state)
        log.write({"event": "checkpoint", "step": at_step, "path": str(path)})
        rt.barrier()

    result = RunResult(run_dir, step, math.nan, loop["min_val_bpb"], is_master=rt.is_master)
    start_step = step
    while True:
        if step == cfg.stop_after_step and step > start_step:    # a planned pause: save, stop, resume later
            checkpoint(step, loader.state_dict())
            timer.message(f"stopped after step {step} (stop_after_step); --resume continues the run")
            result.stopped = True
            break
        last = is_last_step(step, cfg.num_iterations, loop["train_time"], cfg.max_seconds)
        # -- evaluate, sample, save (never counted as training time) ----------------------
        if last or (cfg.eval_every > 0 and step % cfg.eval_every == 0):
            model.eval()
            bpb, nats, nbytes = evaluate_bpb(trained, val, token_bytes)
            if rt.world_size > 1:                                 # each rank saw its shard of val
                nats, nbytes = rt.sum([nats, nbytes])
                bpb = nats / (math.log(2) * nbytes) if nbytes else math.nan
            extra = recipe.extra_eval(model, step)                # e.g. chat evaluations (Phase 8)
            model.train()
            loop["val_bpb"], loop["min_val_bpb"] = bpb, min(loop["min_val_bpb"], bpb)
            log.write({"event": "eval", "step": step, "val_bpb": bpb, **extra})
            timer.message(f"step {step:5d} | val bpb {bpb:.4f}" + "".join(f" | {k} {v:.4g}" for k, v in extra.items()))
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
            # --8<-- [start:optimizer_step]
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
            # --8<-- [end:optimizer_step]
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
                timer.message(f"saved step {step} in {ckpt_dir}; --resume continues from it")
            raise
        if not math.isfinite(train_loss):
            raise UserError(f"training diverged at step {step} (loss {train_loss}); lower the learning rates")
        step += 1
        loop["train_time"] += dt
        loop["smooth_loss"] = 0.9 * loop["smooth_loss"] + 0.1 * train_loss
        smooth = debias(loop["smooth_loss"], step)                # the EMA, corrected for its 0 start
        tok_per_s = plan.total_batch_size / dt
        mfu = plan.flops_per_token * tok_per_s / peak
        record = {"event": "step", "step": step, "loss": train_loss, "smooth_loss": smooth, "lrm": lrm,
                  "dt": dt, "tok_per_s": tok_per_s, "mfu": mfu, "train_time": loop["train_time"],
                  "tokens": step * plan.total_batch_size}
        log.write(record)
        timer.step(step, cfg.num_iterations, smooth, lrm, dt, tok_per_s, mfu,
                   eta_seconds(step, cfg.num_iterations, dt, loop["train_time"], cfg.max_seconds))
        result.tok_per_s, result.mfu = tok_per_s, mfu
    timer.close()
    log.close()
    result.step, result.val_bpb, result.min_val_bpb = step, loop["val_bpb"], loop["min_val_bpb"]
    result.train_time = loop["train_time"]
    return result
