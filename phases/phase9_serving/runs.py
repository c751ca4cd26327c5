"""Which trained model to talk to: ``--run RUN``, or the best one there is.

``chat`` and ``serve`` take ``--run`` as Phase 2's ``find_checkpoint`` does (a run name
under ``<base>/runs``, a run folder or one checkpoint folder). Without it they pick:

1. the newest **chat model**: a run whose checkpoint says ``"stage": "sft"`` or ``"rl"`` in
   its ``meta.json`` (Phase 8 writes that), or whose name starts with ``sft``, ``rl`` or
   ``chat``; newest = most recently written checkpoint;
2. else the **base demo run** (``cpu_demo``, what ``mini-nanochat demo`` trains): a base
   model only continues text, so the commands say so;
3. else a clear error naming the command that trains one.

What it leaves out: downloading published checkpoints.

Run: ``python -m phases.phase9_serving.runs`` prints the run ``chat``/``serve`` would use.
"""
from __future__ import annotations

from pathlib import Path

from phases.common.console import UserError
from phases.common.paths import runs_dir
from phases.phase2_training.checkpoint import latest_checkpoint
from phases.phase2_training.load import find_checkpoint

DEMO_RUN = "cpu_demo"
CHAT_STAGES = ("sft", "rl")
CHAT_PREFIXES = ("sft", "rl", "chat")


def is_chat_model(meta: dict, run_name: str) -> bool:
    """Was this checkpoint fine-tuned to chat (Phase 8), or is it a base model?"""
    return meta.get("stage") in CHAT_STAGES or run_name.lower().startswith(CHAT_PREFIXES)


def default_run() -> tuple[str, bool]:
    """(run folder, is_chat) of the model to use when ``--run`` is not given."""
    root = runs_dir()
    chats = []
    for run in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        ckpt = latest_checkpoint(run / "checkpoints")
        if ckpt is not None and is_chat_model(ckpt.meta, run.name):
            chats.append((ckpt.path.stat().st_mtime, str(run)))
    if chats:
        return max(chats)[1], True
    demo = root / DEMO_RUN
    if latest_checkpoint(demo / "checkpoints") is not None:
        return str(demo), False
    raise UserError(f"no trained model under {root}: train one with `mini-nanochat demo` "
                    "(or name a run or checkpoint folder with --run)")


def resolve_run(run: str | None) -> tuple[str, bool, str]:
    """(path or name for ``load_model``, is_chat, a short name for the model) for ``--run``."""
    if run is None:
        path, chat = default_run()
        return path, chat, Path(path).name
    ckpt = find_checkpoint(run)               # a clear UserError when it is not there
    run_folder = ckpt.path.parent.parent
    return run, is_chat_model(ckpt.meta, run_folder.name), run_folder.name


if __name__ == "__main__":
    try:
        path, chat = default_run()
        print(f"{path} ({'chat model' if chat else 'base model'})")
    except UserError as e:
        print(f"error: {e}")
