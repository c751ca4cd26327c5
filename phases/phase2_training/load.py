"""Reading a run back: a run name (or folder, or ``RUN@STEP``) -> its checkpoint -> a model to use.

What Phases 6-9 and the tools call to open a trained run:

- ``find_checkpoint(run, step=None)`` accepts a run name (looked up under ``<base>/runs``), a
  run folder, its ``checkpoints/`` folder, one step folder or ``RUN@STEP``, and returns the
  newest good checkpoint (or the one at ``step``), verified; ``read_meta`` its meta.json;
- ``load_model(run, device)`` returns ``(GPT, tokenizer, meta)`` in eval mode, ready to
  generate with: the model rebuilt from the checkpoint's ``model_config``, its weights checked
  finite, and the tokenizer the run trained with (its vocabulary checked against the model's);
- ``list_runs``, ``resolve_run``, ``step_folder``, ``split_spec``: the lookups behind them.

Every mistake (no such run, no good checkpoint, a missing step, a tokenizer that does not
fit) is a ``UserError`` naming what was looked for. The files themselves are read by
``checkpoint.py`` (their one reader, beside their writer); this module only finds them.

What it leaves out: downloading runs (checkpoints are local folders).

Run: ``python -m phases.phase2_training.load RUN`` prints what a run's newest good checkpoint holds.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from phases.common.console import UserError
from phases.common.paths import run_dir, runs_dir
from phases.phase2_training.checkpoint import (FOLDER, Checkpoint, latest_checkpoint, list_checkpoints, load_weights,
                                               step_dir, verify_checkpoint)



def list_runs(root: str | os.PathLike | None = None) -> list[Path]:
    """Run folders (those holding ``checkpoints/``) at or below ``root`` (default ``<base>/runs``)."""
    root = Path(root).expanduser() if root is not None else runs_dir()
    if not root.is_dir():
        raise UserError(f"{root} is not a directory")
    runs = []
    for here, dirs, _ in os.walk(root):
        if "checkpoints" in dirs:
            runs.append(Path(here))
            dirs.clear()  # a run's insides are not searched for more runs
        dirs[:] = [d for d in dirs if not d.startswith(".")]
    return sorted(runs)


def resolve_run(path_or_run: str | os.PathLike) -> Path:
    """A run folder from a run name, the run folder, its ``checkpoints/`` or one step folder."""
    p = Path(path_or_run).expanduser()
    if not p.exists() and len(p.parts) == 1:
        p = run_dir(p.name)                   # a run name
    if not p.is_dir():
        raise UserError(f"{path_or_run}: no such run directory (nor a run name under {runs_dir()})")
    if FOLDER.fullmatch(p.name) and p.parent.name == "checkpoints":
        p = p.parent.parent
    elif p.name == "checkpoints":
        p = p.parent
    if not (p / "checkpoints").is_dir():
        raise UserError(f"{p} is not a run directory: it has no checkpoints/ folder "
                        "(runs are made by training, Phase 2: `mini-nanochat pretrain`)")
    return p


def split_spec(spec: str | os.PathLike) -> tuple[str, int | None]:
    """``"cpu_demo@200"`` -> ``("cpu_demo", 200)``; anything without ``@STEP`` -> ``(spec, None)``."""
    run, sep, step = str(spec).rpartition("@")
    if sep and run and not Path(str(spec)).exists():
        if not re.fullmatch("[0-9]{1,18}", step):
            raise UserError(f"{spec}: the step after '@' must be a whole number (RUN@STEP, e.g. cpu_demo@200)")
        return run, int(step)
    return str(spec), None


def step_folder(path_or_run: str | os.PathLike, step: int) -> Path:
    """The folder of step ``step`` of a run (it must exist; the error lists the steps there are)."""
    folder = step_dir(resolve_run(path_or_run) / "checkpoints", step)
    if not folder.is_dir():
        have = ", ".join(p.name for p in list_checkpoints(folder.parent)) or "none"
        raise UserError(f"{folder.parent.parent} has no checkpoint at step {step}; it has: {have}")
    return folder


# --8<-- [start:load_model]
def find_checkpoint(path_or_run: str | os.PathLike, step: int | None = None) -> Checkpoint:
    """The newest good checkpoint of a run, or the one named (a step folder, ``RUN@STEP`` or ``step``).

    Accepts a step folder (``.../checkpoints/step_000250``), a ``checkpoints/`` folder, a
    run folder, or a bare run name (looked up under ``<base>/runs``).
    """
    path_or_run, at = split_spec(path_or_run)
    step = step if step is not None else at
    given = Path(path_or_run).expanduser()
    if not given.exists() and len(given.parts) == 1:
        given = run_dir(given.name)           # a run name
    if not given.exists():
        raise UserError(f"no run or checkpoint at {path_or_run} (a run name, run folder or step folder; "
                        "runs are made by training, Phase 2: `mini-nanochat pretrain`)")
    if step is not None:
        return verify_checkpoint(step_folder(given, step))
    if (given / "meta.json").exists():
        return verify_checkpoint(given)                     # one step folder: exactly this one
    ckpts = given / "checkpoints" if (given / "checkpoints").is_dir() else given
    found = latest_checkpoint(ckpts)
    if found is None:
        raise UserError(f"{given} holds no good checkpoint (looked in {ckpts}); checkpoints are written by "
                        "training (Phase 2: `mini-nanochat pretrain`)")
    return found


def read_meta(path_or_run: str | os.PathLike, step: int | None = None) -> dict:
    """The verified ``meta.json`` of a checkpoint (see ``find_checkpoint`` for what ``path_or_run`` may be)."""
    return find_checkpoint(path_or_run, step).meta


def load_model(path_or_run: str | os.PathLike, device: str | torch.device = "cpu",
               dtype: torch.dtype | None = None, step: int | None = None,
               tokenizer: str | os.PathLike | None = None):
    """``(GPT, tokenizer, meta)`` of a checkpoint, in eval mode on ``device``.

    The tokenizer is the one the run trained with: a copy in the run folder if there is
    one, else the file named in ``meta.json`` (or ``tokenizer``, a folder or file, when
    given); its vocabulary must match the model's.
    """
    from phases.phase0_tokenizer.bpe import BPETokenizer
    from phases.phase1_transformer.config import GPTConfig, resolve_device
    from phases.phase1_transformer.model import GPT

    ckpt = find_checkpoint(path_or_run, step)
    meta = ckpt.meta
    try:
        config = GPTConfig(**meta["model_config"])
    except (KeyError, TypeError) as e:
        raise UserError(f"{ckpt.path / 'meta.json'} has no usable model_config ({e})") from None
    candidates = [ckpt.path.parent.parent / "tokenizer.json"]
    if isinstance(meta.get("tokenizer"), str) and Path(meta["tokenizer"]).name == "tokenizer.json":
        candidates.append(Path(meta["tokenizer"]))   # where the run's tokenizer was (never any other file)
    if tokenizer is not None:
        given = Path(tokenizer).expanduser()
        candidates = [given / "tokenizer.json" if given.is_dir() else given]
    tok_file = next((c for c in candidates if c.is_file()), None)
    if tok_file is None:
        raise UserError(f"the tokenizer of {ckpt.path} is gone (looked for {', '.join(map(str, candidates))})")
    tok = BPETokenizer.load(tok_file)
    if tok.vocab_size != config.vocab_size:
        raise UserError(f"{tok_file} has {tok.vocab_size} tokens but the model expects {config.vocab_size}: "
                        "not the tokenizer this run trained with")
    device = resolve_device(device) if isinstance(device, str) else torch.device(device)   # "tpu": one error line
    model = GPT.build(config, device=device, dtype=dtype)
    missing, unexpected = model.load_state_dict(load_weights(ckpt.path, device, finite=True), strict=False)
    if missing or unexpected:
        raise UserError(f"checkpoint {ckpt.path} does not match its own model_config: missing {missing[:5]}, "
                        f"unexpected {unexpected[:5]}")
    model.eval()
    return model, tok, meta
# --8<-- [end:load_model]


if __name__ == "__main__":
    import sys

    from phases.common.console import run_command

    def main():
        if len(sys.argv) != 2:
            raise UserError("usage: python -m phases.phase2_training.load RUN (a run name, folder or RUN@STEP)")
        ckpt = find_checkpoint(sys.argv[1])
        model, tok, meta = load_model(ckpt.path)
        print(f"{ckpt.path}: step {ckpt.step}, {sum(p.numel() for p in model.parameters()):,} parameters, "
              f"vocab {tok.vocab_size:,}, val bpb {float(meta.get('val_bpb', 'nan')):.4f}")

    sys.exit(run_command(main))
