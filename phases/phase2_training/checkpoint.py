"""Checkpoints that survive crashes: atomic, checksummed, never unpickled.

A run directory looks like::

    runs/cpu_demo/
      metrics.jsonl                      one JSON record per step / evaluation / sample
      checkpoints/step_000200/
        model.safetensors                the weights (safetensors: a header + raw tensors)
        optim.pt                         optimizer state and RNG states (loaded weights_only)
        meta.json                        step, configs, val bpb, loop and data state, sha256 of the files

A checkpoint is first written into ``step_000200.tmp-<random>/``, every file fsynced, and
only then renamed to ``step_000200/`` (a directory rename is atomic), so a crash at any
moment leaves either the complete new checkpoint or none of it. ``meta.json`` records a
sha256 of the other files; ``latest_checkpoint`` skips (and names) any checkpoint whose
files are missing or do not match, so resuming always starts from the latest *good* one.

``integrity.check_checkpoint`` is the one integrity check (the loop, the tools and the chat
half use it; re-exported here): nothing outside the folder is ever read, whatever
meta.json says. ``verify_checkpoint`` raises its first problem as ``CorruptCheckpoint``.
``load_checkpoint`` reads and checks everything before it changes the model; the loop
resumes from the newest checkpoint that loads (``resume_candidates``), skipping and naming
the others. A save also removes the ``.tmp-`` folders of saves a crash interrupted.

With several ranks (Phase 4) rank 0 writes one checkpoint; a sharded optimizer first
gathers its state into the single-process layout, so any world size can resume it.

The files are read here and nowhere else (``load_weights``, ``read_optimizer_state``, through
``integrity.check_checkpoint``); finding a run by name and building its model from them is
``load.py`` (``find_checkpoint``, ``load_model``: what Phases 6-9 and the tools call).

What it leaves out: per-rank optimizer files (nanochat's layout), cloud storage.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from phases.common.console import UserError
from phases.phase2_training.integrity import (DTYPE_BYTES, FILES, FOLDER, FORMAT_VERSION, META_FILE,  # noqa: F401
                                              RESUME_KEYS, STEP_PREFIX, CheckReport, CorruptCheckpoint,
                                              check_checkpoint, read_safetensors_header, sha256_file)

def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _safetensors():
    try:
        import safetensors.torch as st
    except ImportError:
        raise UserError("checkpoints need the safetensors package: pip install safetensors") from None
    return st


@dataclass
class Checkpoint:
    path: Path
    step: int
    meta: dict


# --8<-- [start:save]
def save_checkpoint(ckpt_dir: str | os.PathLike, step: int, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, meta: dict, keep_last: int = 2,
                    optimizer_state: dict | None = None) -> Path:
    """Write checkpoint ``step`` atomically; then delete all but the newest ``keep_last``.

    ``optimizer_state``: the optimizer's state_dict when the caller already has it (Phase 4
    gathers a sharded optimizer's state on every rank, then rank 0 alone writes it).
    """
    st = _safetensors()
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    final = step_dir(ckpt_dir, step)
    tmp = Path(tempfile.mkdtemp(prefix=final.name + ".tmp-", dir=ckpt_dir))
    try:
        weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        st.save_file(weights, tmp / "model.safetensors")
        state = {"optimizer": optimizer_state if optimizer_state is not None else optimizer.state_dict(),
                 "torch_rng": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        torch.save(state, tmp / "optim.pt")
        files = {name: sha256_file(tmp / name) for name in FILES}
        sizes = {name: (tmp / name).stat().st_size for name in FILES}   # checked before hashing: a cheap first test
        full_meta = {"format_version": FORMAT_VERSION, "step": step, "files": files, "sizes": sizes, **meta}
        (tmp / META_FILE).write_text(json.dumps(full_meta, indent=2))
        for name in (*FILES, META_FILE):
            _fsync(tmp / name)
        if final.is_dir() and not final.is_symlink():  # re-saving the same step (e.g. after a resume)
            shutil.rmtree(final)
        elif final.exists() or final.is_symlink():     # a file or a link in its place: not ours to keep
            final.unlink()
        os.replace(tmp, final)  # atomic: the checkpoint appears complete or not at all
        _fsync(ckpt_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for old in list_checkpoints(ckpt_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    for stale in ckpt_dir.glob(f"{STEP_PREFIX}*.tmp-*"):   # saves a crash interrupted (ours was renamed)
        shutil.rmtree(stale, ignore_errors=True)
    return final
# --8<-- [end:save]


def step_dir(ckpt_dir: str | os.PathLike, step: int) -> Path:
    """``<ckpt_dir>/step_000200``: the folder of step ``step``."""
    return Path(ckpt_dir) / f"{STEP_PREFIX}{step:06d}"


def _step_folders(ckpt_dir: Path) -> list[Path]:
    """Folders named like checkpoints (``step_N`` and ``step_N.tmp-…``), by step; links never followed."""
    if not ckpt_dir.is_dir():
        return []
    found = [p for p in ckpt_dir.iterdir() if FOLDER.fullmatch(p.name) and p.is_dir() and not p.is_symlink()]
    return sorted(found, key=lambda p: (int(FOLDER.fullmatch(p.name)[1]), p.name))


def list_checkpoints(ckpt_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoint directories (no ``.tmp-``), oldest first."""
    return [p for p in _step_folders(Path(ckpt_dir)) if not FOLDER.fullmatch(p.name)[2]]


def scan_checkpoints(run: str | os.PathLike, hash: bool = True, resumable: bool = False) -> list[CheckReport]:
    """Every step folder of a run (its folder or its ``checkpoints/``), .tmp- leftovers too, oldest first."""
    run = Path(run)
    ckdir = run if run.name == "checkpoints" else run / "checkpoints"
    return [check_checkpoint(p, hash, resumable) for p in _step_folders(ckdir)]


def verify_checkpoint(path: str | os.PathLike, resumable: bool = False) -> Checkpoint:
    """``check_checkpoint`` with every check; the first problem is raised as a CorruptCheckpoint naming the file."""
    c = check_checkpoint(path, hash=True, resumable=resumable)
    if c.problems:
        raise CorruptCheckpoint(f"checkpoint file {Path(path)}{os.sep}{c.problems[0]}")
    return Checkpoint(Path(path), c.step, c.meta)


def resume_candidates(ckpt_dir: str | os.PathLike) -> Iterator[Checkpoint]:
    """Checkpoints a run can resume from, newest first, verified one at a time (``resumable``);
    a bad one is skipped with a warning naming it and what is wrong."""
    for path in reversed(list_checkpoints(ckpt_dir)):
        try:
            yield verify_checkpoint(path, resumable=True)
        except CorruptCheckpoint as e:
            warnings.warn(f"skipping bad checkpoint: {e}", stacklevel=2)


def latest_checkpoint(ckpt_dir: str | os.PathLike, resumable: bool = False) -> Checkpoint | None:
    """The newest checkpoint that verifies; bad ones are skipped with a warning naming them."""
    for path in reversed(list_checkpoints(ckpt_dir)):
        try:
            return verify_checkpoint(path, resumable)
        except CorruptCheckpoint as e:
            warnings.warn(f"skipping bad checkpoint: {e}", stacklevel=2)
    return None


def load_weights(path: str | os.PathLike, device="cpu", finite: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of ``model.safetensors``; ``finite``: a clear error if any holds NaN or inf
    (a diverged run's weights only sample garbage; resuming keeps them, to show the divergence)."""
    st = _safetensors()
    f = Path(path) / "model.safetensors"
    try:
        weights = st.load_file(str(f), device=str(device))
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise CorruptCheckpoint(f"checkpoint file {f} cannot be read: {e}") from None
    bad = [k for k, v in weights.items() if finite and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise UserError(f"{f} holds NaN or inf values ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}): "
                        "the run diverged or the file was altered; use an earlier checkpoint (RUN@STEP)")
    return {k.removeprefix("_orig_mod."): v for k, v in weights.items()}


def read_optimizer_state(path: str | os.PathLike, device="cpu") -> dict:
    """``optim.pt`` of a checkpoint folder, loaded without unpickling code, its layout checked."""
    f = Path(path) / "optim.pt"
    try:
        state = torch.load(f, map_location=device, weights_only=True)  # never unpickles code
    except Exception as e:
        raise CorruptCheckpoint(f"checkpoint file {f} cannot be read: {str(e).splitlines()[0][:200]}") from None
    opt = state.get("optimizer") if isinstance(state, dict) else None
    rng = state.get("torch_rng") if isinstance(state, dict) else None
    if not (isinstance(opt, dict) and isinstance(opt.get("state"), dict) and isinstance(opt.get("param_groups"), list)):
        raise CorruptCheckpoint(f"checkpoint file {f} holds no optimizer state dict")
    if not (torch.is_tensor(rng) and rng.dtype == torch.uint8 and rng.shape == torch.get_rng_state().shape):
        raise CorruptCheckpoint(f"checkpoint file {f} holds no valid torch RNG state")
    return state


def load_checkpoint(ckpt: Checkpoint, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    device="cpu") -> None:
    """Restore weights (strict), optimizer state and RNG states from a verified checkpoint.

    Everything is read and checked before anything is changed; a file that cannot be used
    raises ``CorruptCheckpoint`` (the loop then falls back to an older checkpoint).
    """
    weights, state = load_weights(ckpt.path, device), read_optimizer_state(ckpt.path, device)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise UserError(f"checkpoint {ckpt.path} does not match the model: missing {missing[:5]}, "
                        f"unexpected {unexpected[:5]} (was it made with another configuration?)")
    if optimizer is not None:
        try:
            optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as e:
            raise CorruptCheckpoint(f"checkpoint file {ckpt.path / 'optim.pt'}: the optimizer state does not fit "
                                    f"this optimizer ({str(e)[:160]})") from None
    torch.set_rng_state(state["torch_rng"].cpu())
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
