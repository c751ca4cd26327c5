"""The end-to-end pipeline: corpus -> tokenizer -> pretraining -> base evaluation -> SFT -> RL ->
chat evaluation -> a few chat exchanges, with one report card for the whole run.

    mini-nanochat demo                                         # examples/pipeline_cpu.toml: make demo
    mini-nanochat run --config examples/pipeline_cpu.toml      # the same, any pipeline config
    mini-nanochat run --config examples/pipeline_cpu.toml --stages sft,rl,chat_eval,chat
    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node=2 -m mini_nanochat run --config ...

A pipeline config (TOML, read by ``pipeline_config.py``) names each stage's own config (``[pretrain] config = "cpu_demo.toml"``)
and its settings; ``stages.py`` holds what each stage does, always by calling the phase that
owns it. Before a stage starts it prints its plan; when it ends, one line with its time and
headline metric. ``<base>/pipelines/<name>/`` keeps ``state.json`` (what each stage was run
from and made) and the report card (``report.md``, Phase 7's format). A stage whose inputs
are unchanged is reused; an interrupted training stage resumes from its last checkpoint;
Ctrl-C at any moment and the same command again: nothing lost, nothing redone.

Under torchrun, rank 0 decides each stage's plan and runs the one-process stages (data,
tokenizer, chat) while the others wait on torchrun's own key-value store; the training and
evaluation stages run on every rank, in one process group joined once for the whole run
(Phase 4's ``distributed()``; each stage's own join reuses it).

What it leaves out: several nodes without a shared file system (every rank reads the runs).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import time
from datetime import timedelta
from pathlib import Path

from mini_nanochat import stages as S
from mini_nanochat.pipeline_config import DEMO_PIPELINE, ORDER, PipelineConfig  # noqa: F401
from phases.common.console import UserError
from phases.common.files import atomic_write_text
from phases.common.paths import base_dir

TITLES = {"data": "data", "tokenizer": "tokenizer (training and evaluation)", "pretrain": "pretraining",
          "base_eval": "base model evaluation", "sft": "supervised fine-tuning", "rl": "reinforcement learning",
          "chat_eval": "chat evaluation", "chat": "a few exchanges with the chat model"}


class Ranks:
    """Rank 0 speaks for the pipeline; under torchrun the others wait on its decisions."""

    def __init__(self):
        self.rank, self.world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
        self.store = None
        if self.world > 1:
            if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
                raise UserError("several ranks without torchrun: launch the pipeline with torchrun")
            import torch.distributed as dist
            self.store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                                       timeout=timedelta(hours=48))   # a long rank-0 stage; torchrun stops us if it dies
            self.prefix = f"mini_nanochat/pipeline/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/"

    @property
    def is_master(self) -> bool:
        return self.rank == 0

    def share(self, key: str, make):
        """``make()`` on rank 0; every rank returns its (JSON-able) result."""
        if self.store is None:
            return make()
        if self.is_master:
            value = make()
            self.store.set(self.prefix + key, json.dumps(value))
            return value
        return json.loads(self.store.get(self.prefix + key))


class Ledger:
    """``state.json``: for each stage, the hash of its inputs and what it produced (rank 0 writes)."""

    def __init__(self, folder: Path):
        self.path = folder / "state.json"
        try:
            self.state = json.loads(self.path.read_text())
            assert isinstance(self.state, dict)
        except (OSError, ValueError, AssertionError):
            self.state = {}

    def get(self, stage: str) -> dict | None:
        rec = self.state.get(stage)
        return rec if isinstance(rec, dict) else None

    def put(self, stage: str, record: dict) -> None:
        self.state[stage] = record
        atomic_write_text(self.path, json.dumps(self.state, indent=1, default=str))


class Context:
    """What the stages share: the config, the ranks, the ledger and the stages' own configs."""

    def __init__(self, cfg: PipelineConfig, fresh: bool, show_progress: bool):
        self.cfg, self.fresh, self.show_progress = cfg, fresh, show_progress
        self.ranks = Ranks()
        self.folder = base_dir() / "pipelines" / cfg.name
        if self.ranks.is_master:
            self.folder.mkdir(parents=True, exist_ok=True)
        self.ledger = Ledger(self.folder)
        self.outputs: dict[str, str] = {}
        self._configs: dict = {}

    def stage_config_path(self, stage: str) -> Path:
        return self.cfg.config_path(stage)

    def stage_cfg(self, stage: str):
        """The stage's own config (loaded once; the SFT and RL configs read the run they start from)."""
        if stage not in self._configs:
            if stage == "pretrain":
                from phases.phase5_data.pretrain import load_config
                extra = {}
            elif stage == "sft":
                from phases.phase8_sft.sft import load_config
                extra = {"base": str(self.run_dir("pretrain"))}
            else:
                from phases.phase8_sft.rl import load_config
                extra = {"sft": str(self.run_dir("sft"))}
            over = {**extra, **self.cfg.section(stage).get("set", {}), **self.cfg.overrides.get(stage, {})}
            cfg = load_config(self.stage_config_path(stage), over)
            self._configs[stage] = cfg.replace(run_name=cfg.run_name + self.cfg.suffix) if self.cfg.suffix else cfg
        return self._configs[stage]

    def process_group(self):
        """Under torchrun, one process group for every stage (joining again per stage can read the
        stale store keys of the group before), on the pretraining config's device and timeout
        (SFT and RL inherit the base model's; their configs cannot be read before it exists)."""
        if self.ranks.world == 1:
            return contextlib.nullcontext()
        from phases.phase4_ddp.dist import distributed
        if "pretrain" not in self.cfg.raw:
            return distributed("", 300.0)
        return distributed(self.pretrain_cfg().device, self.pretrain_cfg().dist_timeout)

    def pretrain_cfg(self):
        return self.stage_cfg("pretrain")

    def run_dir(self, stage: str) -> Path:
        from phases.phase2_training.train import run_dir_of
        return run_dir_of(self.stage_cfg(stage))

    def final_run(self) -> Path:
        """The last model the config trains: RL's, else SFT's, else the base model."""
        return self.run_dir(self.final_stage())

    def again(self) -> str:
        from phases.phase7_eval.report import command_line
        return command_line()

    def to_continue(self) -> str:
        """The command that picks an interrupted run up: this one without --fresh (which would
        start every stage over, deleting what the interrupted one made)."""
        return re.sub(r"\s--fresh(?=\s|$)", "", self.again())

    def output_of(self, stage: str) -> str:
        rec = self.ledger.get(stage)
        return self.outputs.get(stage) or (rec or {}).get("output", "")

    # -- the inputs of each stage, hashed ---------------------------------------------------------
    def upstream(self, stage: str) -> list[str]:
        """The stages whose outputs are this stage's inputs."""
        return {"data": [], "tokenizer": ["data"], "pretrain": ["data", "tokenizer"], "base_eval": ["pretrain"],
                "sft": ["pretrain"], "rl": ["sft"], "chat_eval": [self.final_stage()], "chat": []}[stage]

    def key(self, stage: str) -> str:
        from dataclasses import asdict
        upstream = self.upstream(stage)
        if stage in ("pretrain", "sft", "rl"):
            settings = asdict(self.stage_cfg(stage))
        elif stage == "tokenizer":
            settings = asdict(S.tokenizer_settings(self))
        else:
            settings = {**self.cfg.section(stage), "data_dir": self.pretrain_cfg().data_dir}
        return S.digest(stage, settings, [self.output_of(u) for u in upstream])

    def final_stage(self) -> str:
        return next(s for s in ("rl", "sft", "pretrain") if s in self.cfg.raw)

    def plan(self, stage: str, key: str) -> dict:
        rec = self.ledger.get(stage)
        if stage in ("pretrain", "sft", "rl"):
            plan = S.plan_training(self, stage, self.stage_cfg(stage), key)
            if plan["action"] != "reuse":
                # Before it trains: an interruption, then the same command, must find this key and
                # resume, never see the old key and start the run over again (losing it).
                done_before = rec.get("seconds", 0.0) if rec and rec.get("running") and plan["action"] == "resume" else 0.0
                self.ledger.put(stage, {"key": key, "running": True, "seconds": done_before})
            return plan
        if stage == "tokenizer":
            return S.plan_tokenizer(self, key)
        skipped = rec is not None and "skipped" in (rec.get("section") or {})
        if stage in ("base_eval", "chat_eval") and rec and rec.get("key") == key and not self.fresh and not skipped:
            return {"action": "reuse", "note": f"reusing the evaluation of {rec.get('seconds', 0):.0f} s ago "
                                               "(same model and settings; --fresh measures again)"}
        if stage == "data":
            return {"action": "run", "note": "the pretraining data"}
        run = self.run_dir("pretrain") if stage == "base_eval" else self.final_run()
        return {"action": "run", "note": f"{'talking to' if stage == 'chat' else 'evaluating'} {run}"}

    def keep_time(self, stage: str, seconds: float) -> None:
        """Ctrl-C in a training stage: its time so far counts when it resumes (rank 0 writes)."""
        rec = self.ledger.get(stage)
        if self.ranks.is_master and rec and rec.get("running"):
            self.ledger.put(stage, {**rec, "seconds": rec.get("seconds", 0.0) + seconds})

    def record(self, stage: str, key: str, plan: dict, outcome: S.Outcome, seconds: float, have: list[str],
               summary: dict) -> str:
        """Rank 0, after a stage: its ledger entry, then the report card; returns its output hash."""
        from phases.phase7_eval import report
        reused, old = plan["action"] == "reuse", self.ledger.get(stage) or {}
        if reused:
            seconds = old.get("seconds", seconds)          # a reused stage keeps the time it took
        elif old.get("running"):
            seconds += old.get("seconds", 0.0)             # a resumed one adds its interrupted sessions
        self.ledger.put(stage, {"key": key, "output": outcome.output, "headline": outcome.headline,
                                "section": outcome.section, "seconds": round(seconds, 1), "reused": reused,
                                "inputs": {u: self.output_of(u) for u in self.upstream(stage)}})
        # The card covers every stage the ledger knows, whichever ran this time; a stage whose
        # inputs changed since it ran (a later one, after --stages retrained an earlier one) is marked.
        rows = []
        for s in have:
            r = self.ledger.get(s)
            if not r or r.get("running"):
                continue
            rows.append({"stage": s, "seconds": r["seconds"], "headline": r["headline"],
                         "reused": r.get("reused", False), "stale": not self._current(s, r)})
        summary["stages"] = rows
        summary["seconds"] = round(sum(x["seconds"] for x in rows if not x["stale"]), 1)
        report.update(self.folder, outcome.report_key, outcome.section)
        report.update(self.folder, "pipeline", summary)
        return outcome.output

    def _current(self, stage: str, rec: dict) -> bool:
        """Was ``rec`` made from what its upstream stages hold now, and are they current too?"""
        for u in self.upstream(stage):
            up = self.ledger.get(u)
            if up is None:
                continue                                   # not a stage of this pipeline run
            changed = "inputs" in rec and rec["inputs"].get(u) != up.get("output")   # (older ledgers: unknown)
            if up.get("running") or changed or not self._current(u, up):
                return False
        return True

    def execute(self, stage: str, plan: dict) -> S.Outcome:
        if stage == "data":
            return S.run_data(self, plan)
        if stage == "tokenizer":
            return S.run_tokenizer(self, plan)
        if stage in ("pretrain", "sft", "rl"):
            from phases.phase5_data.pretrain import pretrain
            from phases.phase8_sft.rl import rl
            from phases.phase8_sft.sft import sft
            train = {"pretrain": pretrain, "sft": sft, "rl": rl}[stage]
            return S.run_training(self, stage, self.stage_cfg(stage), train, plan)
        if stage == "base_eval":
            return S.run_eval(self, "base", self.run_dir("pretrain"), plan)
        if stage == "chat_eval":
            return S.run_eval(self, "chat", self.final_run(), plan)
        return S.run_chat(self, self.final_run())


ONE_PROCESS = ("data", "tokenizer", "chat")     # rank 0 alone; the others wait for its result


def run_pipeline(cfg: PipelineConfig, selected: list[str] | None = None, fresh: bool = False,
                 show_progress: bool = True) -> dict:
    """Run ``selected`` stages (default: all the config has) in order; return the report."""
    from phases.phase7_eval import report
    ctx = Context(cfg, fresh, show_progress)
    say = print if ctx.ranks.is_master else (lambda *a, **k: None)
    have = cfg.stages()
    selected = selected or have
    missing = [s for s in selected if s not in have]
    if missing:
        raise UserError(f"{', '.join(missing)}: not in {cfg.path.name} (it has {', '.join(have)})")
    selected = [s for s in have if s in selected]
    import torch
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    every_stage = re.sub(r"\s--stages(=|\s+)\S+", "", ctx.again())     # the card reproduces the whole run
    summary = {"config": str(cfg.path), "command": every_stage, "stages": [],
               "hardware": report.hardware(device, ctx.ranks.world)}
    t_start = time.perf_counter()
    with ctx.process_group():
        _run_stages(ctx, selected, have, summary, say)
    say(f"\npipeline {cfg.name} finished in {time.perf_counter() - t_start:.0f} s; "
        f"report card: {ctx.folder / 'report.md'}", flush=True)
    return summary


def _run_stages(ctx: Context, selected: list[str], have: list[str], summary: dict, say) -> None:
    from phases.phase7_eval import report
    for i, stage in enumerate(selected, 1):
        say(f"\n== {i}/{len(selected)} {TITLES[stage]}", flush=True)
        key = ctx.key(stage)
        plan = ctx.ranks.share(f"{stage}/plan", lambda: ctx.plan(stage, key))
        say(plan["note"], flush=True)
        t0 = time.perf_counter()
        try:
            outcome = ctx.execute(stage, plan) if ctx.ranks.is_master or stage not in ONE_PROCESS else None
        except KeyboardInterrupt:
            ctx.keep_time(stage, time.perf_counter() - t0)
            raise
        seconds = time.perf_counter() - t0
        ctx.outputs[stage] = ctx.ranks.share(f"{stage}/done", lambda: ctx.record(stage, key, plan, outcome,
                                                                              seconds, have, summary))
        say(f"-- {stage}: {'reused' if plan['action'] == 'reuse' else 'done'} in {seconds:.0f} s: "
            f"{outcome.headline if outcome else ''}", flush=True)


# -- the command lines -------------------------------------------------------------------------
def _stage_list(text: str) -> list[str]:
    names = [s.strip().replace("-", "_") for s in text.split(",") if s.strip()]
    bad = [n for n in names if n not in ORDER]
    if bad or not names:
        shown = ", ".join(bad) if bad else repr(text)
        raise argparse.ArgumentTypeError(f"unknown stage(s) {shown}; choose from {', '.join(ORDER)}")
    return names


def add_arguments(parser: argparse.ArgumentParser, demo: bool = False) -> None:
    if not demo:
        parser.add_argument("--config", required=True, help="a pipeline config, e.g. examples/pipeline_cpu.toml")
    parser.add_argument("--stages", type=_stage_list, default=None, metavar="LIST",
                        help=f"only these stages, comma-separated, in pipeline order (default: all): {', '.join(ORDER)}")
    parser.add_argument("--fresh", action="store_true", help="redo every selected stage instead of reusing")


def run(args: argparse.Namespace) -> dict:
    cfg = PipelineConfig(args.config)
    return run_pipeline(cfg, args.stages, args.fresh, show_progress=not getattr(args, "no_progress", False))
