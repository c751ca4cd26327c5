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

With several ranks (Phase 4) rank 0 writes one checkpoint; a sharded optimizer first
gathers its state into the single-process layout, so any world size can resume it.

Reading a run back (Phases 6-9 and the tools): ``find_checkpoint(run)`` accepts a run
name, a run folder, its ``checkpoints/`` folder or one step folder and returns the newest
good checkpoint; ``load_model(run, device)`` returns ``(GPT, tokenizer, meta)`` ready to
generate with. Both are the only readers of this format.

What it leaves out: per-rank optimizer files (nanochat's layout), cloud storage.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from phases.phase0_tokenizer.common import UserError

FORMAT_VERSION = 1
STEP_PREFIX = "step_"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
    final = ckpt_dir / f"{STEP_PREFIX}{step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=final.name + ".tmp-", dir=ckpt_dir))
    try:
        weights = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        st.save_file(weights, tmp / "model.safetensors")
        state = {"optimizer": optimizer_state if optimizer_state is not None else optimizer.state_dict(),
                 "torch_rng": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        torch.save(state, tmp / "optim.pt")
        files = {name: sha256_file(tmp / name) for name in ("model.safetensors", "optim.pt")}
        full_meta = {"format_version": FORMAT_VERSION, "step": step, "files": files, **meta}
        (tmp / "meta.json").write_text(json.dumps(full_meta, indent=2))
        for name in ("model.safetensors", "optim.pt", "meta.json"):
            _fsync(tmp / name)
        if final.exists():  # re-saving the same step (e.g. after a resume): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)  # atomic: the checkpoint appears complete or not at all
        _fsync(ckpt_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for old in list_checkpoints(ckpt_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final
# --8<-- [end:save]


def list_checkpoints(ckpt_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoint directories (no ``.tmp-``), oldest first."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    found = [p for p in ckpt_dir.iterdir()
             if p.is_dir() and p.name.startswith(STEP_PREFIX) and p.name[len(STEP_PREFIX):].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(STEP_PREFIX):]))


def verify_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Check files and checksums without loading tensors; raise UserError naming the bad file."""
    path = Path(path)
    meta_file = path / "meta.json"
    try:
        meta = json.loads(meta_file.read_text())
    except FileNotFoundError:
        raise UserError(f"checkpoint {path} is incomplete: {meta_file} is missing") from None
    except (ValueError, OSError) as e:
        raise UserError(f"checkpoint file {meta_file} is corrupt: {e}") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{meta_file}: unsupported checkpoint format {meta.get('format_version')!r}")
    for name, digest in meta.get("files", {}).items():
        f = path / name
        if not f.exists():
            raise UserError(f"checkpoint file {f} is missing")
        if sha256_file(f) != digest:
            raise UserError(f"checkpoint file {f} is corrupt or truncated (sha256 mismatch)")
    return Checkpoint(path, int(meta["step"]), meta)


def latest_checkpoint(ckpt_dir: str | os.PathLike) -> Checkpoint | None:
    """The newest checkpoint that verifies; bad ones are skipped with a warning naming them."""
    for path in reversed(list_checkpoints(ckpt_dir)):
        try:
            return verify_checkpoint(path)
        except UserError as e:
            warnings.warn(f"skipping bad checkpoint: {e}", stacklevel=2)
    return None


def load_weights(path: str | os.PathLike, device="cpu") -> dict[str, torch.Tensor]:
    st = _safetensors()
    f = Path(path) / "model.safetensors"
    try:
        weights = st.load_file(str(f), device=str(device))
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise UserError(f"checkpoint file {f} cannot be read: {e}") from None
    return {k.removeprefix("_orig_mod."): v for k, v in weights.items()}


def load_checkpoint(ckpt: Checkpoint, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    device="cpu") -> None:
    """Restore weights (strict), optimizer state and RNG states from a verified checkpoint."""
    missing, unexpected = model.load_state_dict(load_weights(ckpt.path, device), strict=False)
    if missing or unexpected:
        raise UserError(f"checkpoint {ckpt.path} does not match the model: missing {missing[:5]}, "
                        f"unexpected {unexpected[:5]} (was it made with another configuration?)")
    f = ckpt.path / "optim.pt"
    try:
        state = torch.load(f, map_location=device, weights_only=True)  # never unpickles code
    except Exception as e:
        raise UserError(f"checkpoint file {f} cannot be read: {e}") from None
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"].cpu())
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])


def find_checkpoint(path_or_run: str | os.PathLike) -> Checkpoint:
    """The newest good checkpoint of a run, or the one named.

    Accepts a step folder (``.../checkpoints/step_000250``), a ``checkpoints/`` folder, a
    run folder, or a bare run name (looked up under ``<base>/runs``).
    """
    from phases.common.paths import run_dir
    given = Path(path_or_run).expanduser()
    if not given.exists() and len(given.parts) == 1:
        given = run_dir(given.name)           # a run name
    if not given.exists():
        raise UserError(f"no run or checkpoint at {path_or_run} (a run name, run folder or step folder)")
    if (given / "meta.json").exists():
        return verify_checkpoint(given)                     # one step folder: exactly this one
    ckpts = given / "checkpoints" if (given / "checkpoints").is_dir() else given
    found = latest_checkpoint(ckpts)
    if found is None:
        raise UserError(f"{given} holds no good checkpoint (looked in {ckpts})")
    return found


def read_meta(path_or_run: str | os.PathLike) -> dict:
    """The verified ``meta.json`` of a checkpoint (see ``find_checkpoint`` for what ``path_or_run`` may be)."""
    return find_checkpoint(path_or_run).meta


def load_model(path_or_run: str | os.PathLike, device: str | torch.device = "cpu",
               dtype: torch.dtype | None = None):
    """``(GPT, tokenizer, meta)`` of a checkpoint, in eval mode on ``device``.

    The tokenizer is the one the run trained with: a copy in the run folder if there is
    one, else the file named in ``meta.json``; its vocabulary must match the model's.
    """
    from phases.phase0_tokenizer.bpe import BPETokenizer
    from phases.phase1_transformer.config import GPTConfig
    from phases.phase1_transformer.model import GPT

    ckpt = find_checkpoint(path_or_run)
    meta = ckpt.meta
    try:
        config = GPTConfig(**meta["model_config"])
    except (KeyError, TypeError) as e:
        raise UserError(f"{ckpt.path / 'meta.json'} has no usable model_config ({e})") from None
    candidates = [ckpt.path.parent.parent / "tokenizer.json"]
    if meta.get("tokenizer"):
        candidates.append(Path(meta["tokenizer"]))
    tok_file = next((c for c in candidates if c.is_file()), None)
    if tok_file is None:
        raise UserError(f"the tokenizer of {ckpt.path} is gone (looked for {', '.join(map(str, candidates))})")
    tok = BPETokenizer.load(tok_file)
    if tok.vocab_size != config.vocab_size:
        raise UserError(f"{tok_file} has {tok.vocab_size} tokens but the model expects {config.vocab_size}: "
                        "not the tokenizer this run trained with")
    device = torch.device(device)
    model = GPT.build(config, device=device, dtype=dtype)
    missing, unexpected = model.load_state_dict(load_weights(ckpt.path, device), strict=False)
    if missing or unexpected:
        raise UserError(f"checkpoint {ckpt.path} does not match its own model_config: missing {missing[:5]}, "
                        f"unexpected {unexpected[:5]}")
    model.eval()
    return model, tok, meta
