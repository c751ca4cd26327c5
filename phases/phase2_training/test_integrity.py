"""Phase 2 checkpoint, step 6 (continued): every kind of broken checkpoint (integrity.py).

One 8-step run (checkpoints at steps 4 and 8) is trained per test; each corruption class is
applied to step 8 and must end in one of two ways: ``check_checkpoint`` names the problem and
resuming falls back to step 4, or a clear error. Never a traceback, a hang, or a read of a
file outside the checkpoint folder (issue 15, defects 1, 6 and 10).
"""
from __future__ import annotations

import builtins
import io
import json
import os
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from phases.phase2_training import checkpoint as ck
from phases.phase2_training import integrity

pytestmark = pytest.mark.phase2


def _meta(step_dir: Path) -> dict:
    return json.loads((step_dir / "meta.json").read_text())


def _write_meta(step_dir: Path, meta) -> None:
    (step_dir / "meta.json").write_text(json.dumps(meta))


def _rehash(step_dir: Path, name: str) -> None:
    """Record the file's current sha256 and size: a damaged file whose checksum matches."""
    meta = _meta(step_dir)
    meta["files"][name] = integrity.sha256_file(step_dir / name)
    meta["sizes"][name] = (step_dir / name).stat().st_size
    _write_meta(step_dir, meta)


def _edit_meta(**changes):
    def edit(d: Path):
        meta = _meta(d)
        for k, v in changes.items():
            if v is KeyError:
                meta.pop(k)
            else:
                meta[k] = v
        _write_meta(d, meta)
    return edit


def _edit_files(d: Path):
    meta = _meta(d)
    meta["files"]["/dev/zero"] = "00"        # issue 15 #1: an absolute name
    _write_meta(d, meta)


def _optim_without_optimizer(d: Path):
    state = torch.load(d / "optim.pt", weights_only=True)
    state.pop("optimizer")
    torch.save(state, d / "optim.pt")
    _rehash(d, "optim.pt")


def _unreadable_header_matching_sha(d: Path):
    f = d / "model.safetensors"
    data = bytearray(f.read_bytes())
    data[8:16] = b"\xff" * 8                  # the JSON header no longer parses; same size
    f.write_bytes(bytes(data))
    _rehash(d, "model.safetensors")


def _weights_as_link(d: Path):
    (d / "model.safetensors").unlink()
    (d / "model.safetensors").symlink_to("/etc/hostname" if Path("/etc/hostname").exists() else "/dev/null")


def _step_folder_is_a_file(d: Path):
    shutil.rmtree(d)
    d.write_text("not a folder")


CORRUPTIONS = {
    "meta.json is a list": lambda d: _write_meta(d, [1, 2]),
    "meta.json is not JSON": lambda d: (d / "meta.json").write_text("{"),
    "meta.json nested 100k deep": lambda d: (d / "meta.json").write_text("[" * 100_000),
    "files is a list": _edit_meta(files=["model.safetensors", "optim.pt"]),
    "files names /dev/zero": _edit_files,
    "step missing": _edit_meta(step=KeyError),
    "step disagrees with its folder": _edit_meta(step=4),
    "data_state missing": _edit_meta(data_state=KeyError),
    "loop_state missing": _edit_meta(loop_state=KeyError),
    "loop_state of strings": _edit_meta(loop_state={"smooth_loss": "x"}),
    "model_config is a list": _edit_meta(model_config=[1]),
    "total_batch_size missing": _edit_meta(total_batch_size=KeyError),
    "a sha256 that is a number": _edit_meta(files={"model.safetensors": 5, "optim.pt": 7}),
    "model.safetensors truncated": lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 10),
    "model.safetensors is a link": _weights_as_link,
    "header unreadable, sha256 matching": _unreadable_header_matching_sha,
    "optim.pt is a folder": lambda d: ((d / "optim.pt").unlink(), (d / "optim.pt").mkdir()),
    "step folder is a file": _step_folder_is_a_file,
    "stage is a list": _edit_meta(stage=["sft"]),      # issue 15 re-attack: was accepted by inspect and chat
}
LOAD_TIME = {  # well-formed on disk: found only when loading, and the loop must fall back all the same
    "optim.pt has no optimizer key (sha256 matching)": _optim_without_optimizer,
    "data_state of the wrong shape": _edit_meta(data_state={"pos": "x", "epoch": -1}),
}


@pytest.fixture
def run8(trainer, tiny_cfg):
    result = trainer.train(tiny_cfg.replace(num_iterations=8), show_progress=False)
    return tiny_cfg.replace(num_iterations=8), result.run_dir / "checkpoints"


@pytest.fixture
def no_reads_outside(monkeypatch, run8):
    """Fail if anything opens a file outside the run folder (or /dev, /etc) while checking."""
    root = run8[1].parent.resolve()
    real_open = builtins.open

    def guarded(file, *a, **k):
        if isinstance(file, (str, os.PathLike)):
            p = Path(file).resolve()
            if str(p).startswith(("/dev", "/etc")) and root not in p.parents:
                raise AssertionError(f"read outside the checkpoint folder: {p}")
        return real_open(file, *a, **k)
    monkeypatch.setattr(builtins, "open", guarded)
    monkeypatch.setattr(io, "open", guarded)


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_each_corruption_is_named_and_resume_falls_back(name, run8, no_reads_outside):
    cfg, ckpts = run8
    CORRUPTIONS[name](ckpts / "step_000008")
    report = ck.check_checkpoint(ckpts / "step_000008", resumable=True)
    assert not report.ok and report.problems[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert next(ck.resume_candidates(ckpts)).step == 4
        for c in ck.scan_checkpoints(ckpts):         # the tools' view: never raises
            assert c.step in (4, 8, -1)


@pytest.mark.parametrize("name", list(LOAD_TIME) + ["header unreadable, sha256 matching", "files names /dev/zero"])
def test_resume_skips_a_checkpoint_that_does_not_load(name, trainer, run8):
    cfg, ckpts = run8
    (LOAD_TIME.get(name) or CORRUPTIONS[name])(ckpts / "step_000008")
    out = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = trainer.train(cfg.replace(num_iterations=12), resume=True, show_progress=False, out=out)
    assert result.step == 12
    text = out.getvalue()
    assert "resuming from" in text and "step_000004 (step 4)" in text, text[-800:]


def test_no_loadable_checkpoint_is_one_clear_error(trainer, run8):
    cfg, ckpts = run8
    for d in ckpts.iterdir():
        _optim_without_optimizer(d)
    with warnings.catch_warnings(), pytest.raises(ck.UserError, match="nothing to resume"):
        warnings.simplefilter("ignore")
        trainer.train(cfg, resume=True, show_progress=False, out=io.StringIO())


def test_a_save_removes_the_leftovers_of_interrupted_saves(run8):
    cfg, ckpts = run8
    (ckpts / "step_000006.tmp-abc").mkdir()
    (ckpts / "step_000006.tmp-abc" / "model.safetensors").write_bytes(b"half")
    scan = ck.scan_checkpoints(ckpts)
    assert [c.ok for c in scan] == [True, False, True] and scan[1].problems[0].startswith("incomplete")
    from phases.phase1_transformer.model import GPT
    model = GPT.build(cfg.model_config(512), seed=0)
    ck.save_checkpoint(ckpts, 9, model, torch.optim.AdamW(model.parameters()), {})
    assert sorted(p.name for p in ckpts.iterdir()) == ["step_000008", "step_000009"]  # keep_last=2, no .tmp-
