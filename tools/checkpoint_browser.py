#!/usr/bin/env python3
"""Checkpoint browser: list, inspect, compare, measure and delete the checkpoints of training runs.

Usage (from the repository root):

    python tools/checkpoint_browser.py list --sort bpb             # every run under <base>/runs, best first
    python tools/checkpoint_browser.py inspect cpu_demo@200        # one checkpoint: configs, state, tensors
    python tools/checkpoint_browser.py compare cpu_demo@100 cpu_demo@200 --prompt "def " --tokens 20
    python tools/checkpoint_browser.py du                          # disk usage
    python tools/checkpoint_browser.py delete cpu_demo@100         # asks first; --yes skips the question

A checkpoint is ``RUN`` (its newest valid checkpoint), ``RUN@STEP`` or a ``step_NNNNNN`` folder;
``RUN`` is a run folder or a run name under <base>/runs. ``list``, ``inspect`` and ``du`` read
headers and meta.json only (Phase 2's ``checkpoint.check_checkpoint``; ``list --verify`` hashes
every file too; ``inspect`` exits 1 for a checkpoint with problems); ``compare`` loads both:
‖B−A‖/‖A‖ per tensor and layer, and both models' continuations (``load_model``, ``evaluate.sample``).
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import shutil
import sys
import textwrap
from pathlib import Path

import torch

import _view
from phases.common.console import UserError, paint, run_command, use_color
from phases.common.paths import runs_dir
from phases.phase2_training import checkpoint as ck, load
from phases.phase2_training.metrics import debias
from phases.phase2_training.recipe import describe_data_state
from phases.phase5_data.pretrain import PretrainConfig

DEFAULT_PROMPTS = ("Return the", "The following", "import ")
HIGHLIGHTS = ("num_iterations", "device_batch_size", "sequence_len", "matrix_lr", "embedding_lr", "unembedding_lr",
              "scalar_lr", "weight_decay", "warmup_steps", "warmdown_ratio", "final_lr_frac", "seed", "device", "dtype")
SECTIONS = ("loop_state", "model_config", "train_config", "files", "initial_lrs")  # meta.json's objects


def _bytes(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _mtime(path: Path) -> float:
    return max((f.stat().st_mtime for f in path.iterdir()), default=path.stat().st_mtime)


def resolve_checkpoint(spec: str) -> Path:
    """``RUN``, ``RUN@STEP`` or a step_ folder -> the checkpoint folder (valid or not: inspect shows why)."""
    run, step = load.split_spec(spec)
    path = Path(run).expanduser()
    if path.is_dir() and ck.FOLDER.fullmatch(path.name) and path.parent.name == "checkpoints":
        return path
    if step is not None:
        return load.step_folder(run, step)
    good = [c for c in ck.scan_checkpoints(load.resolve_run(run), hash=False) if c.ok]
    if not good:
        raise UserError(f"{load.resolve_run(run)} has no valid checkpoint")
    return good[-1].path


def _checked(path: Path) -> ck.CheckReport:
    if (c := ck.check_checkpoint(path, hash=False)).meta is None:
        raise UserError(f"{path}: {'; '.join(c.problems)}")
    return c


# -- list / du ---------------------------------------------------------------------------------------
def cmd_list(args, color: bool) -> None:
    root = Path(args.dir).expanduser() if args.dir else runs_dir()
    rows = [{"run": str(run.relative_to(root)) if run != root else run.name, "step": c.step,
             "status": "ok" if c.ok else "incomplete" if ".tmp-" in c.path.name else "BAD",
             "val_bpb": (c.meta or {}).get("val_bpb"), "problems": c.problems, "path": str(c.path),
             "params": sum(t["numel"] for t in c.header["tensors"]) if c.header else None,
             "bytes": _bytes(c.path), "date": _mtime(c.path)}
            for run in load.list_runs(root) for c in ck.scan_checkpoints(run, hash=args.verify)]
    bpb = lambda r: r["val_bpb"] if _view.num(r["val_bpb"]) != "-" else math.inf  # noqa: E731
    rows.sort(key={"step": lambda r: (r["run"], r["step"]), "bpb": bpb, "date": lambda r: r["date"],
                   "size": lambda r: -r["bytes"]}[args.sort])
    if args.json or not rows:
        print(json.dumps(_view.clean(rows), indent=1) if args.json else f"no checkpoints under {root}")
        return
    state = {"ok": "32", "BAD": "31", "incomplete": "33"}
    lines = _view.table(["run", "step", "status", "val bpb", "params", "size", "date"],
                        [[r["run"], r["step"], r["status"], _view.num(r["val_bpb"]),
                          f"{r['params']:,}" if r["params"] else "-", _view.size(r["bytes"]), _view.date(r["date"])]
                         for r in rows], right={1, 3, 4, 5}).splitlines()
    for i, r in enumerate(rows):  # colour after aligning: escape codes have no width
        lines[i + 2] = lines[i + 2].replace(f" {r['status']} ", f" {paint(r['status'], state[r['status']], color)} ", 1)
    print("\n".join(lines))
    print(f"{len(rows)} checkpoint(s) in {len({r['run'] for r in rows})} run(s) under {root}; sha256 "
          + ("checked" if args.verify else "not checked (--verify hashes every file)"))
    for r in (r for r in rows if r["status"] != "ok"):
        print(f"  {r['run']} step {r['step']}: {'; '.join(r['problems'])}")


def cmd_du(args, color: bool) -> None:
    root = Path(args.dir).expanduser() if args.dir else runs_dir()
    report = []
    for run in load.list_runs(root):
        sizes = {c.path.name: _bytes(c.path) for c in ck.scan_checkpoints(run, hash=False)}
        total = _bytes(run)
        report.append({"run": str(run), "bytes": total, "checkpoints": sizes,
                       "incomplete_bytes": sum(v for k, v in sizes.items() if ".tmp-" in k),
                       "other_bytes": total - sum(sizes.values())})
    report.sort(key=lambda r: -r["bytes"])
    if args.json:
        print(json.dumps(report, indent=1))
        return
    for r in report:
        print(_view.bold(f"{_view.size(r['bytes']):>12}  {r['run']}", color))
        for name, n in r["checkpoints"].items():
            print(f"{_view.size(n):>12}    {name}" + ("  (incomplete save: reclaimable)" if ".tmp-" in name else ""))
        print(f"{_view.size(r['other_bytes']):>12}    (metrics and other files)")
    print(f"{_view.size(sum(r['bytes'] for r in report)):>12}  total, {len(report)} run(s) under {root}")


# -- inspect -----------------------------------------------------------------------------------------
def inspect_report(path: Path) -> dict:
    c = _checked(path)
    meta = {k: v for k, v in c.meta.items() if isinstance(v, dict) or k not in SECTIONS}  # wrong shape: absent
    loop = dict(meta.get("loop_state", {}))
    if c.step and isinstance(loop.get("smooth_loss"), (int, float)):
        loop["train_loss_ema"] = debias(loop["smooth_loss"], c.step)  # what the console showed
    tc = meta.get("train_config", {})
    defaults = {f: getattr(PretrainConfig(), f) for f in PretrainConfig.__dataclass_fields__}
    return {"path": str(path), "step": c.step, "ok": c.ok, "problems": c.problems, "date": _mtime(path),
            "val_bpb": meta.get("val_bpb"), "torch": meta.get("torch"), "tokenizer": meta.get("tokenizer"),
            "model_config": meta.get("model_config", {}), "total_batch_size": meta.get("total_batch_size"),
            "highlights": {k: tc[k] for k in HIGHLIGHTS if k in tc}, "initial_lrs": meta.get("initial_lrs"),
            "other_settings": {k: v for k, v in tc.items()
                               if k not in HIGHLIGHTS and k in defaults and v != defaults[k]},
            "loop_state": loop, "data_state": meta.get("data_state"),
            "files": {n: {"bytes": _bytes(path / n) if (path / n).exists() else None, "sha256": d}
                      for n, d in meta.get("files", {}).items()},
            "tensors": [{k: t[k] for k in ("name", "dtype", "shape", "numel", "bytes")}
                        for t in (c.header or {}).get("tensors", [])]}


def cmd_inspect(args, color: bool) -> int:
    r = inspect_report(resolve_checkpoint(args.ckpt))
    if args.json:
        return print(json.dumps(_view.clean(r), indent=1)) or int(not r["ok"])
    h = lambda s: _view.bold(s, color)  # noqa: E731
    def kv(d, ind="  "):  # noqa: E306
        text = ", ".join(f"{k}={v}" if v != "" else f'{k}=""' for k, v in d.items())
        return textwrap.fill(text, 100, initial_indent=ind, subsequent_indent=ind)
    print(f"{h('checkpoint')}: {r['path']}")
    print(f"step {r['step']}, saved {_view.date(r['date'])}, torch {r['torch']}, val bpb {_view.num(r['val_bpb'])}, "
          + (paint("integrity ok (headers; sha256 not checked)", "32", color) if r["ok"]
             else paint("PROBLEMS: " + "; ".join(r["problems"]), "31", color)))
    print(f"{h('model config')}:\n{kv(r['model_config'])}")
    print(f"{h('train config')} (total_batch_size {_view.num(r['total_batch_size'], ',')} tokens/step):\n{kv(r['highlights'])}")
    if r["other_settings"]:
        print(f"  other non-default settings:\n{kv(r['other_settings'], '    ')}")
    if r["initial_lrs"]:
        print(f"{h('learning rates applied')} (peak, per optimizer group):\n"
              + kv({k: f"{v:.4g}" for k, v in r["initial_lrs"].items()}))
    loop = {k: f"{v:.4f}" if isinstance(v, float) else v for k, v in r["loop_state"].items()}
    print(f"{h('loop state')} (smooth_loss: raw EMA of the loss, low early; train_loss_ema: debiased, as shown):\n"
          f"{kv(loop)}\n{h('data state')}: {describe_data_state(r['data_state'])}\n{h('tokenizer')}: {r['tokenizer']}")
    print(h("files") + ":")
    for name, f in r["files"].items():
        print(f"  {name:18s} {_view.size(f['bytes']) if f['bytes'] is not None else 'MISSING':>12}  "
              f"sha256 {str(f['sha256'])[:16]}…")
    t = r["tensors"]
    print(f"{h('tensors')} ({len(t)}, {sum(x['numel'] for x in t):,} values, {_view.size(sum(x['bytes'] for x in t))}, "
          "from the safetensors header):")
    print(_view.table(["name", "dtype", "shape", "numel", "bytes"],
                      [[x["name"], x["dtype"], "x".join(map(str, x["shape"])) or "scalar", f"{x['numel']:,}",
                        f"{x['bytes']:,}"] for x in t], right={3, 4}))
    return int(not r["ok"])


# -- compare -----------------------------------------------------------------------------------------
GROUPS = ("wte", "value embeds", "layer", "lm_head", "scalars and gates")   # in the order of the model


def group_of(name: str) -> tuple[int, int, str]:
    """(sort key..., label) of the part of the model a tensor belongs to."""
    parts = name.split(".")
    if parts[0] in ("blocks", "value_embeds"):
        kind = "layer" if parts[0] == "blocks" else "value embeds"
        return GROUPS.index(kind), int(parts[1]), f"{kind} {parts[1]}"
    kind = parts[0] if parts[0] in ("wte", "lm_head") else "scalars and gates"
    return GROUPS.index(kind), 0, kind


def weight_changes(wa: dict, wb: dict) -> dict:
    """Per tensor and per group: relative change ‖B−A‖/‖A‖ and cosine similarity."""
    tensors, groups, mismatched = [], {}, sorted(set(wa) ^ set(wb))
    for name in sorted(set(wa) & set(wb)):
        a, b = wa[name].double(), wb[name].double()
        if a.shape != b.shape:
            mismatched.append(name)
            continue
        d2, a2 = float((b - a).pow(2).sum()), float(a.pow(2).sum())
        cos = float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0))
        tensors.append({"name": name, "rel_change": math.sqrt(d2 / a2) if a2 else math.inf, "cosine": cos})
        g = groups.setdefault(group_of(name), [0.0, 0.0, 0])
        g[0], g[1], g[2] = g[0] + d2, g[1] + a2, g[2] + 1
    per_group = [{"group": k[2], "tensors": n, "rel_change": math.sqrt(d2 / a2) if a2 else math.inf}
                 for k, (d2, a2, n) in sorted(groups.items())]
    d2, a2 = sum(g[0] for g in groups.values()), sum(g[1] for g in groups.values())
    return {"total_rel_change": math.sqrt(d2 / a2) if a2 else math.inf, "groups": per_group,
            "tensors": sorted(tensors, key=lambda t: -t["rel_change"]), "not_compared": mismatched}


def generate_all(path: Path, prompts: list[str], tokens: int, tokenizer: str | None) -> list[str]:
    from phases.phase2_training.evaluate import sample
    model, tok, _ = load.load_model(path, dtype=torch.float32, tokenizer=tokenizer)
    with torch.no_grad():
        return [text for _, text in sample(model, tok, prompts, max_tokens=tokens)]


def compare_report(pa: Path, pb: Path, prompts: list[str], tokens: int, generate: bool, tokenizer=None) -> dict:
    ca, cb = _checked(pa), _checked(pb)
    diff = {}
    for section in ("model_config", "train_config"):
        a, b = (m if isinstance(m := c.meta.get(section), dict) else {} for c in (ca, cb))  # a wrong shape: {}
        diff[section] = {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
    r = {"a": str(pa), "b": str(pb), "steps": [ca.step, cb.step],
         "val_bpb": [ca.meta.get("val_bpb"), cb.meta.get("val_bpb")],
         "config_diff": diff, "weights": weight_changes(ck.load_weights(pa), ck.load_weights(pb)), "prompts": prompts}
    if generate:
        r["generations"] = [generate_all(p, prompts, tokens, tokenizer) for p in (pa, pb)]
    return r


def cmd_compare(args, color: bool) -> None:
    if args.tokens < 1:
        raise UserError("--tokens must be >= 1")
    pa, pb = resolve_checkpoint(args.a), resolve_checkpoint(args.b)
    r = compare_report(pa, pb, list(DEFAULT_PROMPTS) + args.prompt, args.tokens, not args.no_generate, args.tokenizer)
    if args.json:
        print(json.dumps(_view.clean(r), indent=1))
        return
    h = lambda s: _view.bold(s, color)  # noqa: E731
    for name, i in (("A", 0), ("B", 1)):
        print(f"{h(name)}: {r[name.lower()]} (step {r['steps'][i]}, val bpb {_view.num(r['val_bpb'][i])})")
    for section, d in r["config_diff"].items():
        print(f"{h(section)}: " + ("identical" if not d else f"{len(d)} difference(s)"))
        for k, (a, b) in d.items():
            print(f"  {k}: {a!r} -> {b!r}")
    w = r["weights"]
    print(f"{h('weight change')} ‖B−A‖/‖A‖: {w['total_rel_change']:.4g} overall")
    print(_view.table(["group", "tensors", "rel change"], [[g["group"], g["tensors"], f"{g['rel_change']:.4g}"]
                                                            for g in w["groups"]], right={1, 2}))
    shown = w["tensors"] if args.all_tensors else w["tensors"][:5]
    print(f"{'all tensors' if args.all_tensors else 'most changed tensors (--all-tensors for every one)'}:")
    print(_view.table(["tensor", "rel change", "cosine"], [[t["name"], f"{t['rel_change']:.4g}", f"{t['cosine']:.4f}"]
                                                            for t in shown], right={1, 2}))
    if w["not_compared"]:
        print(f"not compared (only in one, or another shape): {', '.join(w['not_compared'])}")
    if "generations" in r:
        col = max(20, (shutil.get_terminal_size((100, 24)).columns - 3) // 2)
        print(f"{h('continuations')} ({args.tokens} tokens, quoted; A on the left, B on the right):")
        for i, prompt in enumerate(r["prompts"]):
            print(paint(f"prompt {prompt!r}", "36", color))
            a, b = ([repr(g[i])[k:k + col] for k in range(0, len(repr(g[i])), col)] for g in r["generations"])
            for la, lb in zip(a + [""] * (len(b) - len(a)), b + [""] * (len(a) - len(b))):
                print(f"{la:<{col}} | {lb}".rstrip())


# -- delete ------------------------------------------------------------------------------------------
def cmd_delete(args, color: bool) -> int:
    if "@" not in args.ckpt and not ck.FOLDER.fullmatch(Path(args.ckpt).name):
        raise UserError(f"name one checkpoint to delete: RUN@STEP or a step_ folder (not the run {args.ckpt!r})")
    path = resolve_checkpoint(args.ckpt)
    target = ck.check_checkpoint(path)
    others = [c for c in ck.scan_checkpoints(path.parent.parent) if c.ok and c.path != path]
    if target.ok and not others and not args.force:
        raise UserError(f"{path.name} is the only valid checkpoint of {path.parent.parent}: deleting it leaves "
                        "nothing to resume from or sample; pass --force to delete it anyway")
    what = f"{path} ({_view.size(_bytes(path))}, {'valid' if target.ok else 'invalid: ' + '; '.join(target.problems)})"
    if not args.yes:
        try:
            answer = input(f"delete {what}? [y/N] ")
        except EOFError:                                 # no terminal: no
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("not deleted")
            return 1
    shutil.rmtree(path)
    print(f"deleted {what}")
    if target.ok and others and all(c.step < target.step for c in others):
        print(f"note: the newest valid checkpoint is now step {others[-1].step}; a resume restarts from there")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="checkpoint_browser.py", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="List, inspect, compare, measure and delete training checkpoints.",
        epilog="examples:\n  %(prog)s list --sort bpb\n  %(prog)s inspect cpu_demo@200\n"
               "  %(prog)s compare cpu_demo@100 cpu_demo@200 --prompt 'def ' --tokens 20\n"
               "  %(prog)s du ~/.cache/mini-nanochat/runs\n  %(prog)s delete cpu_demo@100 --yes\n"
               "CKPT: RUN (its newest valid checkpoint), RUN@STEP, or a step_NNNNNN folder; RUN: a run folder "
               "or a name under <base>/runs")
    common = argparse.ArgumentParser(add_help=False)  # --no-color before or after the subcommand
    common.add_argument("--no-color", dest="color", action="store_false", default=argparse.SUPPRESS,
                        help="no ANSI colour (also when piped or NO_COLOR is set)")
    ap.add_argument("--no-color", dest="color", action="store_false", help="no ANSI colour")
    ap.set_defaults(color=None)
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add = functools.partial(sub.add_parser, parents=[common])
    as_json = {"action": "store_true", "help": "machine-readable output"}
    p = add("list", help="every checkpoint of every run under DIR")
    p.add_argument("dir", nargs="?", help="folder to search (default <base>/runs); a run folder works too")
    p.add_argument("--sort", choices=("step", "bpb", "date", "size"), default="step",
                   help="step: by run then step (default); bpb: best first; date: oldest first; size: largest first")
    p.add_argument("--verify", action="store_true", help="also check every file's sha256 (reads all bytes)")
    p.add_argument("--json", **as_json)
    p = add("inspect", help="configs, loop state and the tensor table of one checkpoint")
    p.add_argument("ckpt", metavar="CKPT")
    p.add_argument("--json", **as_json)
    p = add("compare", help="config diff, weight change per layer, and both models' text")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("--prompt", action="append", default=[], help="add a prompt (repeatable)")
    p.add_argument("--tokens", type=int, default=16, help="tokens to generate per prompt (16)")
    p.add_argument("--no-generate", action="store_true", help="skip the text generation")
    p.add_argument("--tokenizer", help="tokenizer folder to use instead of the one the run trained with")
    p.add_argument("--all-tensors", action="store_true", help="show the change of every tensor")
    p.add_argument("--json", **as_json)
    p = add("du", help="disk usage per run and checkpoint")
    p.add_argument("dir", nargs="?", help="folder to search (default <base>/runs)")
    p.add_argument("--json", **as_json)
    p = add("delete", help="delete one checkpoint (asks first)")
    p.add_argument("ckpt", metavar="CKPT", help="RUN@STEP or a step_ folder")
    p.add_argument("--yes", action="store_true", help="do not ask")
    p.add_argument("--force", action="store_true", help="allow deleting the run's only valid checkpoint")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    color = use_color(force=args.color)
    commands = {"list": cmd_list, "inspect": cmd_inspect, "compare": cmd_compare, "du": cmd_du, "delete": cmd_delete}
    status: dict = {}
    return run_command(lambda: status.setdefault("code", commands[args.command](args, color))) or status.get("code") or 0


if __name__ == "__main__":
    sys.exit(main())
