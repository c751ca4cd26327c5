#!/usr/bin/env python3
"""Training resume helper: can this run be resumed, from which checkpoint, with which exact command?

Usage (from the repository root):

    python tools/training_resume_helper.py cpu_demo                 # a run name under <base>/runs
    python tools/training_resume_helper.py ~/runs/my_run --fast     # skip the sha256 hashing
    python tools/training_resume_helper.py cpu_demo --target-steps 2000   # resume *and* extend
    python tools/training_resume_helper.py cpu_demo --json

Checks, without loading a weight: meta.json (names the right step); the safetensors header (parses,
tensors back to back, file = 8 + header + data bytes); tensor names and shapes = what model_config
builds (on the meta device); optim.pt is a torch.save archive; sha256 = meta.json's (``--fast``
skips it). ``.tmp-`` folders are saves a crash interrupted. For the newest valid checkpoint: LR
schedule position, progress, time left (recent step times in metrics.jsonl), steps a crash lost,
and the resume command: ``mini-nanochat pretrain --run-dir DIR --resume`` plus ``--set key=value``
for every saved train_config value that differs from today's defaults, so the config matches.
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import shlex
import statistics
import sys
import time
import zipfile
from dataclasses import dataclass, field, fields
from pathlib import Path

try:  # run as `python tools/training_resume_helper.py`: the repo root is not on sys.path
    import phases.phase2_training.checkpoint  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from phases.common.console import UserError, paint, run_command, use_color
from phases.common.paths import base_dir
from phases.phase1_transformer.config import GPTConfig
from phases.phase1_transformer.model import GPT
from phases.phase2_training.checkpoint import FORMAT_VERSION, sha256_file
from mini_nanochat.pretrain import PretrainConfig  # the settings `mini-nanochat pretrain` accepts
from phases.phase2_training.schedule import lr_multiplier

DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
               "U16": 2, "U32": 4, "U64": 8, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
CKPT_NAME = re.compile(r"step_(\d+)(\.tmp-.*)?")


def resolve_run(arg: str | os.PathLike) -> Path:
    """A run folder from a path (the run, its checkpoints/ or one step_ folder) or a run name."""
    p = Path(arg).expanduser()
    if not p.exists() and os.sep not in str(arg):
        p = base_dir() / "runs" / str(arg)
    if not p.is_dir():
        raise UserError(f"{arg}: no such run directory (nor a run name under {base_dir() / 'runs'})")
    if CKPT_NAME.fullmatch(p.name) and p.parent.name == "checkpoints":
        p = p.parent.parent
    elif p.name == "checkpoints":
        p = p.parent
    if not (p / "checkpoints").is_dir():
        raise UserError(f"{p} is not a run directory: it has no checkpoints/ folder")
    return p


def read_safetensors_header(path: Path) -> dict:
    """Parse and check a .safetensors header (8-byte length + JSON) without reading tensor data."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        n = int.from_bytes(raw, "little") if len(raw) == 8 else -1
        if n < 2 or n > size - 8:
            raise UserError(f"{path.name}: header length {n:,} does not fit a {size:,}-byte file "
                            "(truncated, or not a safetensors file)")
        try:
            header = json.loads(f.read(n))
        except (ValueError, UnicodeDecodeError) as e:
            raise UserError(f"{path.name}: the header is not valid JSON ({e})") from None
    metadata = header.pop("__metadata__", None) if isinstance(header, dict) else {}
    tensors = []
    for name, info in header.items() if isinstance(header, dict) else [("<header>", None)]:
        try:
            dtype, shape, (start, end) = info["dtype"], [int(d) for d in info["shape"]], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{path.name}: malformed header entry for tensor {name!r}") from None
        if dtype not in DTYPE_BYTES:
            raise UserError(f"{path.name}: tensor {name!r} has an unknown dtype {dtype!r}")
        numel = math.prod(shape)
        if end - start != numel * DTYPE_BYTES[dtype]:
            raise UserError(f"{path.name}: tensor {name!r} spans {end - start:,} bytes, but {dtype} "
                            f"{shape} needs {numel * DTYPE_BYTES[dtype]:,}")
        tensors.append({"name": name, "dtype": dtype, "shape": shape, "numel": numel,
                        "bytes": end - start, "offsets": [start, end]})
    tensors.sort(key=lambda t: t["offsets"])
    pos = 0
    for t in tensors:
        if t["offsets"][0] != pos:
            raise UserError(f"{path.name}: tensor data is not contiguous at {t['name']!r} "
                            f"(starts at byte {t['offsets'][0]:,}, expected {pos:,})")
        pos = t["offsets"][1]
    if size != 8 + n + pos:
        raise UserError(f"{path.name}: the file is {size:,} bytes but its header describes "
                        f"8 + {n:,} + {pos:,} = {8 + n + pos:,} (truncated or padded)")
    return {"tensors": tensors, "header_bytes": n, "data_bytes": pos, "file_bytes": size, "metadata": metadata}


@functools.lru_cache(maxsize=8)
def expected_shapes(model_config_json: str) -> dict[str, list[int]]:
    """Names and shapes of the state_dict a model_config builds (on the meta device: no memory)."""
    with torch.device("meta"):
        model = GPT(GPTConfig.from_dict(json.loads(model_config_json)))
    return {k: list(v.shape) for k, v in model.state_dict().items()}




@dataclass
class Check:
    path: Path
    step: int
    problems: list[str] = field(default_factory=list)
    meta: dict | None = None
    header: dict | None = None
    ok = property(lambda self: not self.problems)


def check_checkpoint(path: Path, fast: bool = False) -> Check:
    """Every integrity check short of loading tensors; problems are listed, never raised."""
    m = CKPT_NAME.fullmatch(path.name)
    c = Check(path, int(m.group(1)) if m else -1)
    if m is None or m.group(2):
        c.problems.append("incomplete: a save was interrupted (crash or kill while writing); safe to delete")
        return c
    try:
        c.meta = meta = json.loads((path / "meta.json").read_text())
    except FileNotFoundError:
        c.problems.append("meta.json is missing")
        return c
    except (ValueError, OSError) as e:
        c.problems.append(f"meta.json is corrupt ({e})")
        return c
    if meta.get("format_version") != FORMAT_VERSION:
        c.problems.append(f"meta.json: unsupported format_version {meta.get('format_version')!r}")
        return c
    if meta.get("step") != c.step:
        c.problems.append(f"meta.json says step {meta.get('step')!r} but the folder is step {c.step}")
    files = meta.get("files", {})
    c.problems += [f"meta.json records no sha256 for {n}" for n in ("model.safetensors", "optim.pt") if n not in files]
    c.problems += [f"{n} is missing" for n in files if not (path / n).is_file()]
    weights = path / "model.safetensors"
    if weights.is_file():
        try:
            c.header = read_safetensors_header(weights)
        except UserError as e:
            c.problems.append(str(e))
    if c.header is not None and "model_config" in meta:
        try:
            want = expected_shapes(json.dumps(meta["model_config"], sort_keys=True))
        except (UserError, TypeError, ValueError) as e:
            want = None
            c.problems.append(f"meta.json: model_config cannot build a model ({e})")
        got = {t["name"].removeprefix("_orig_mod."): t["shape"] for t in c.header["tensors"]}
        if want is not None and got != want:
            bad = sorted(set(want) ^ set(got)) + sorted(k for k in set(want) & set(got) if want[k] != got[k])
            c.problems.append(f"model.safetensors does not match model_config: {len(bad)} tensor(s) missing, "
                              f"extra or of another shape, e.g. {', '.join(bad[:3])}")
    if (path / "optim.pt").is_file() and not zipfile.is_zipfile(path / "optim.pt"):
        c.problems.append("optim.pt is not a torch.save archive (truncated or overwritten)")
    if not fast:
        c.problems += [f"{n}: sha256 mismatch (corrupt or truncated since it was saved)"
                       for n, digest in files.items() if (path / n).is_file() and sha256_file(path / n) != digest]
    return c


def scan_run(run_dir: Path, fast: bool = False) -> list[Check]:
    """Every step_ folder (and .tmp- leftover) of a run, oldest first."""
    ckdir = run_dir / "checkpoints"
    found = [p for p in ckdir.iterdir() if p.is_dir() and CKPT_NAME.fullmatch(p.name)] if ckdir.is_dir() else []
    found.sort(key=lambda p: (int(CKPT_NAME.fullmatch(p.name)[1]), p.name))
    return [check_checkpoint(p, fast) for p in found]


def schedule_position(tc: dict, step: int) -> dict:
    """Where optimizer step ``step`` (the next one a resume runs) sits on the run's LR schedule."""
    n, warmup = tc["num_iterations"], tc["warmup_steps"]
    warmdown_start = n - round(tc["warmdown_ratio"] * n) + 1  # first step whose multiplier is < 1
    phase = ("finished" if step >= n else "warmup" if step < warmup else
             "constant" if step < warmdown_start else "warmdown")
    lrm = lr_multiplier(min(step, n), n, warmup, tc["warmdown_ratio"], tc["final_lr_frac"])
    lrs = {k: tc[f"{k}_lr"] * lrm for k in ("matrix", "embedding", "unembedding", "scalar")}
    return {"step": step, "phase": phase, "multiplier": lrm, "warmup_steps": warmup,
            "warmdown_start": warmdown_start, "num_iterations": n, "lrs": lrs}


def read_metrics(run_dir: Path) -> list[dict]:
    path, records = run_dir / "metrics.jsonl", []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if path.is_file() else []:
        try:
            records.append(json.loads(line))
        except ValueError:  # a line cut by a crash
            pass
    return [r for r in records if isinstance(r, dict)]


def _value(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else repr(v) if isinstance(v, float) else str(v)


def resume_command(run_dir: Path, meta: dict, target_steps: int | None = None) -> tuple[list[str], dict, list[str]]:
    """(argv, environment, notes): ``mini-nanochat pretrain --run-dir DIR --resume --set k=v …``."""
    saved, notes = dict(meta["train_config"]), []
    defaults = {f.name: f.default for f in fields(PretrainConfig)}
    saved["num_iterations"], env = target_steps or saved["num_iterations"], {}
    if not saved.get("tokenizer_dir") or not saved.get("data_dir"):  # "" = under the base dir of that time
        tok = Path(meta.get("tokenizer", ""))
        old_base = tok.parent.parent if tok.name == "tokenizer.json" and tok.parent.name == "tokenizer" else None
        if old_base is not None and old_base.resolve() != base_dir().resolve():
            env["MINI_NANOCHAT_BASE_DIR"] = str(old_base)
            notes.append(f"the run used the tokenizer and data of base dir {old_base}; the command sets it")
    argv = ["mini-nanochat", "pretrain", "--run-dir", str(run_dir), "--resume"]
    for key, value in saved.items():
        if key not in defaults:
            notes.append(f"train_config key {key}={value!r} is not a setting of this version; left out")
        elif key != "run_dir" and value != defaults[key]:
            argv += ["--set", f"{key}={_value(value)}"]
    return argv, env, notes


def format_command(argv: list[str], env: dict) -> str:
    return " ".join([f"{k}={shlex.quote(v)}" for k, v in env.items()] + [shlex.quote(a) for a in argv])


def analyse(run_dir: Path, fast: bool = False, target_steps: int | None = None) -> dict:
    checks = scan_run(run_dir, fast)
    good = [c for c in checks if c.ok]
    rep = {"run_dir": str(run_dir), "fast": fast,
           "checkpoints": [{"name": c.path.name, "step": c.step, "ok": c.ok, "problems": c.problems,
                            "val_bpb": (c.meta or {}).get("val_bpb") if c.ok else None} for c in checks],
           "latest_valid": None, "notes": []}
    if not good:
        return rep
    c = good[-1]
    meta, tc = c.meta, c.meta["train_config"]
    rep["latest_valid"] = {"path": str(c.path), "step": c.step, "val_bpb": meta.get("val_bpb"),
                           "tensors": len(c.header["tensors"]), "values": sum(t["numel"] for t in c.header["tensors"]),
                           "header_bytes": c.header["header_bytes"], "data_bytes": c.header["data_bytes"],
                           "file_bytes": c.header["file_bytes"], "hashed": sorted(meta["files"]) if not fast else []}
    n = target_steps or tc["num_iterations"]
    rep["schedule"] = schedule_position({**tc, "num_iterations": n}, c.step)
    records = read_metrics(run_dir)
    steps = [r for r in records if r.get("event") == "step" and isinstance(r.get("step"), int)]
    dts = [r["dt"] for r in steps[-20:] if isinstance(r.get("dt"), (int, float))]
    median_dt = statistics.median(dts) if dts else None
    remaining = max(0, n - c.step)
    rep["progress"] = {"step": c.step, "num_iterations": n, "fraction": c.step / n,
                       "tokens": c.step * meta["total_batch_size"], "total_tokens": n * meta["total_batch_size"],
                       "remaining_steps": remaining, "median_dt": median_dt,
                       "remaining_seconds": remaining * median_dt if median_dt is not None else None}
    lost = [r for r in steps if r["step"] > c.step]
    rep["lost"] = {"logged_to": max([r["step"] for r in steps], default=0), "steps": len({r["step"] for r in lost}),
                   "seconds": sum(r.get("dt", 0.0) for r in lost)}
    budget, spent = tc.get("max_seconds", 0.0), meta.get("loop_state", {}).get("train_time", 0.0)
    if remaining == 0:
        rep["notes"].append(f"the run is finished (step {c.step} of {n}); --target-steps N prints a command "
                            "that extends it (the LR schedule is then recomputed for the new horizon)")
    elif budget and spent >= budget:
        rep["notes"].append(f"its time budget is spent (max_seconds={budget:g}, trained {spent:.0f}s): as printed "
                            "it would stop at once; change --set max_seconds=... (0 = no limit)")
    if target_steps and target_steps != tc["num_iterations"]:
        rep["notes"].append(f"--target-steps changes num_iterations {tc['num_iterations']} -> {target_steps}: the "
                            "LR schedule (warmdown) differs from the original from this step on")
    if remaining:
        argv, env, notes = resume_command(run_dir, meta, target_steps)
        rep["resume"] = {"argv": argv, "env": env, "command": format_command(argv, env)}
        rep["notes"] += notes
    return rep


def render(rep: dict, color: bool) -> str:
    b = lambda s: paint(s, "1", color)  # noqa: E731
    out = [f"{b('run')}: {rep['run_dir']}", f"{b('checkpoints')} ({len(rep['checkpoints'])}, oldest first"
           + (", sha256 not checked: --fast" if rep["fast"] else "") + "):"]
    for c in rep["checkpoints"]:
        state = (paint("ok ", "32", color) if c["ok"] else paint("tmp", "33", color) if ".tmp-" in c["name"]
                 else paint("BAD", "31", color))
        bpb = f"val bpb {c['val_bpb']:.4f}" if isinstance(c["val_bpb"], float) else ""
        out.append(f"  {c['name']:24s} {state} {bpb}".rstrip())
        out += [f"      {paint(p, '31', color)}" for p in c["problems"]]
    lv = rep["latest_valid"]
    if lv is None:
        return "\n".join(out + [paint("no valid checkpoint: nothing to resume from", "31", color)])
    out.append(f"{b('latest valid')}: step {lv['step']} ({lv['path']})")
    out.append(f"{b('integrity')}: header parsed, {lv['tensors']} tensors ({lv['values']:,} values) back to back, "
               f"file = 8 + {lv['header_bytes']:,} + {lv['data_bytes']:,} = {lv['file_bytes']:,} bytes; names and "
               "shapes match model_config; " + (f"sha256 ok ({', '.join(lv['hashed'])})" if lv["hashed"]
                                                  else "sha256 not checked (--fast)"))
    p, s, lost = rep["progress"], rep["schedule"], rep["lost"]
    out.append(f"{b('progress')}: step {p['step']:,} / {p['num_iterations']:,} ({p['fraction']:.1%}), "
               f"{p['tokens']:,} of {p['total_tokens']:,} tokens")
    spans = [f"warmup steps 0-{s['warmup_steps'] - 1}"] if s["warmup_steps"] else []
    if s["warmdown_start"] < s["num_iterations"]:
        spans.append(f"warmdown steps {s['warmdown_start']}-{s['num_iterations'] - 1}")
    where = (f"finished: all {s['num_iterations']} steps done, ended at LR multiplier {s['multiplier']:.4f}"
             if s["phase"] == "finished" else f"next step {s['step']} is in {paint(s['phase'], '33', color)} "
             f"at LR multiplier {s['multiplier']:.4f}")
    out.append(f"{b('schedule')}: {where} ({', '.join(spans) or 'constant throughout'})")
    if s["phase"] != "finished":
        out.append("  learning rates then: " + ", ".join(f"{k} {v:.3g}" for k, v in s["lrs"].items()))
    if p["median_dt"] is not None and p["remaining_steps"]:
        out.append(f"{b('remaining')}: {p['remaining_steps']:,} steps x {p['median_dt'] * 1000:.0f} ms (median of the "
                   f"last step times) = about {_hms(p['remaining_seconds'])} of training, evaluations not included")
    out.append(f"{b('lost work')}: " + (f"the log reaches step {lost['logged_to']}: {lost['steps']} step(s) "
                                        f"({_hms(lost['seconds'])}) after the checkpoint will be redone"
                                        if lost["steps"] else "none (the log ends at the checkpoint)"))
    if "resume" in rep:
        out += [b("resume with") + ":", "  " + rep["resume"]["command"]]
    out += [f"{b('note')}: {n}" for n in rep["notes"]]
    return "\n".join(out)


def _hms(seconds: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(seconds)) if seconds >= 60 else f"{seconds:.1f}s"


def _clean(x):  # JSON without NaN / Infinity
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return None if isinstance(x, float) and not math.isfinite(x) else x


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="training_resume_helper.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Find a run's latest valid checkpoint (integrity checked without loading weights), show "
                    "where it sits on the LR schedule and what is left, and print the command that resumes it.",
        epilog="examples:\n  %(prog)s cpu_demo\n  %(prog)s ~/.cache/mini-nanochat/runs/cpu_demo --fast\n"
               "  %(prog)s cpu_demo --target-steps 2000\n  %(prog)s cpu_demo --json\n"
               "exit status: 0 = resumable or finished, 1 = no valid checkpoint, 2 = bad arguments")
    ap.add_argument("run", help="run directory (or its checkpoints/ or a step_ folder), or a run name under "
                                "<base>/runs")
    ap.add_argument("--fast", action="store_true", help="skip the sha256 of every file (headers are still checked)")
    ap.add_argument("--target-steps", type=int, metavar="N", help="print a command that resumes and trains to N steps")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    ap.add_argument("--no-color", dest="color", action="store_false", default=None, help="no ANSI colour")
    return ap


def run(args) -> int:
    if args.target_steps is not None and args.target_steps < 1:
        raise UserError("--target-steps must be >= 1")
    rep = analyse(resolve_run(args.run), args.fast, args.target_steps)
    print(json.dumps(_clean(rep), indent=1) if args.json else render(rep, use_color(force=args.color)))
    return 0 if rep["latest_valid"] else 1


def main(argv: list[str] | None = None) -> int:
    args, code = build_parser().parse_args(argv), []
    return run_command(lambda: code.append(run(args))) or (code[0] if code else 0)


if __name__ == "__main__":
    sys.exit(main())
