#!/usr/bin/env python3
"""Training resume helper: can this run be resumed, from which checkpoint, with which exact command?

Usage (from the repository root):

    python tools/training_resume_helper.py cpu_demo                 # a run name under <base>/runs
    python tools/training_resume_helper.py ~/runs/my_run --fast     # skip the sha256 hashing
    python tools/training_resume_helper.py cpu_demo --target-steps 2000   # resume *and* extend
    python tools/training_resume_helper.py cpu_demo --json

The checks are Phase 2's ``checkpoint.check_checkpoint`` (without loading a weight: meta.json
names the right step; the safetensors header parses, its tensors lie back to back and fill the
file, names and shapes are what model_config builds; optim.pt is a torch.save archive; sha256
= meta.json's, which ``--fast`` skips). ``.tmp-`` folders are saves a crash interrupted. For
the newest valid checkpoint: where it sits on the LR schedule (``schedule.phase_of``, with the
learning rates each optimizer group really applies), progress, time left (recent step times
in metrics.jsonl), steps a crash lost, and the resume command: ``mini-nanochat pretrain
--run-dir DIR --resume`` plus, when the run was started from a TOML file that still exists,
``--config FILE``, and ``--set key=value`` for every saved train_config value that differs
from that file's (else from today's defaults), so the config matches.
"""
from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
from dataclasses import asdict, fields
from pathlib import Path

import _view
from phases.common.console import UserError, duration, paint, run_command, use_color
from phases.common.paths import base_dir, tokenizer_dir
from phases.phase0_tokenizer.bpe import FILENAME
from phases.phase2_training.checkpoint import scan_checkpoints
from phases.phase2_training.load import resolve_run
from phases.phase2_training.metrics import eta_seconds, metrics_path, read_metrics
from phases.phase2_training.schedule import phase_of
from phases.phase5_data.pretrain import PretrainConfig, load_config  # the settings `mini-nanochat pretrain` accepts


def schedule_position(tc: dict, step: int, initial_lrs: dict | None = None) -> dict:
    """Where optimizer step ``step`` (the next one a resume runs) sits on the run's LR schedule."""
    return phase_of(step, tc, initial_lrs)


def _value(v) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else repr(v) if isinstance(v, float) else str(v)


def resume_command(run_dir: Path, meta: dict, target_steps: int | None = None) -> tuple[list[str], dict, list[str]]:
    """(argv, environment, notes): ``mini-nanochat pretrain --run-dir DIR --resume --set k=v …``."""
    saved, notes = dict(meta["train_config"]), []
    defaults = {f.name: f.default for f in fields(PretrainConfig)}
    saved["num_iterations"], env = target_steps or saved["num_iterations"], {}
    if not saved.get("tokenizer_dir") or not saved.get("data_dir"):  # "" = under the base dir of that time
        tok = Path(meta.get("tokenizer", ""))
        old_base = tok.parent.parent if tok.name == FILENAME and tok.parent.name == tokenizer_dir().name else None
        if old_base is not None and old_base.resolve() != base_dir().resolve():
            env["MINI_NANOCHAT_BASE_DIR"] = str(old_base)
            notes.append(f"the run used the tokenizer and data of base dir {old_base}; the command sets it")
    argv = ["mini-nanochat", "pretrain", "--run-dir", str(run_dir), "--resume"]
    launched = (meta.get("launch") or {}).get("config") if isinstance(meta.get("launch"), dict) else None
    if isinstance(launched, str) and Path(launched).is_file():   # started from a TOML file: only what differs
        try:
            defaults = {k: v for k, v in asdict(load_config(launched)).items() if k in defaults}
            argv += ["--config", launched]
        except UserError as e:
            notes.append(f"the run's config file {launched} no longer loads ({e}); every setting is spelled out")
    for key, value in saved.items():
        if key not in defaults:
            notes.append(f"train_config key {key}={value!r} is not a setting of this version; left out")
        elif key != "run_dir" and value != defaults[key]:
            argv += ["--set", f"{key}={_value(value)}"]
    return argv, env, notes


def format_command(argv: list[str], env: dict) -> str:
    return " ".join([f"{k}={shlex.quote(v)}" for k, v in env.items()] + [shlex.quote(a) for a in argv])


def analyse(run_dir: Path, fast: bool = False, target_steps: int | None = None) -> dict:
    checks = scan_checkpoints(run_dir, hash=not fast, resumable=True)  # what --resume would refuse is BAD here too
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
    rep["schedule"] = schedule_position({**tc, "num_iterations": n}, c.step, meta.get("initial_lrs"))
    steps = [r for r in read_metrics(run_dir) if r.get("event") == "step" and isinstance(r.get("step"), int)] \
        if metrics_path(run_dir).is_file() else []
    dts = [r["dt"] for r in steps[-20:] if isinstance(r.get("dt"), (int, float))]
    median_dt = statistics.median(dts) if dts else None
    remaining = max(0, n - c.step)
    rep["progress"] = {"step": c.step, "num_iterations": n, "fraction": c.step / n,
                       "tokens": c.step * meta["total_batch_size"], "total_tokens": n * meta["total_batch_size"],
                       "remaining_steps": remaining, "median_dt": median_dt,
                       "remaining_seconds": eta_seconds(c.step, n, median_dt) if median_dt is not None else None}
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
    b = lambda s: _view.bold(s, color)  # noqa: E731
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
        applied = s.get("applied") or s["lrs"]
        out.append(f"  learning rates then{'' if s.get('applied') else ' (config values: the run predates the record of applied ones)'}: "
                   + ", ".join(f"{k} {v:.3g}" for k, v in applied.items()))
    if p["median_dt"] is not None and p["remaining_steps"]:
        out.append(f"{b('remaining')}: {p['remaining_steps']:,} steps x {p['median_dt'] * 1000:.0f} ms (median of the "
                   f"last step times) = about {duration(p['remaining_seconds'])} of training, evaluations not included")
    out.append(f"{b('lost work')}: " + (f"the log reaches step {lost['logged_to']}: {lost['steps']} step(s) "
                                        f"({duration(lost['seconds'])}) after the checkpoint will be redone"
                                        if lost["steps"] else "none (the log ends at the checkpoint)"))
    if "resume" in rep:
        out += [b("resume with") + ":", "  " + rep["resume"]["command"]]
    out += [f"{b('note')}: {n}" for n in rep["notes"]]
    return "\n".join(out)


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
    print(json.dumps(_view.clean(rep), indent=1) if args.json else render(rep, use_color(force=args.color)))
    return 0 if rep["latest_valid"] else 1


def main(argv: list[str] | None = None) -> int:
    args, code = build_parser().parse_args(argv), []
    return run_command(lambda: code.append(run(args))) or (code[0] if code else 0)


if __name__ == "__main__":
    sys.exit(main())
