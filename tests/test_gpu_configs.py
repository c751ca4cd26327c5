"""The GPU configurations and examples/speedrun.sh, checked without a GPU.

- every ``examples/gpu_*.toml`` pretraining config: the figures its header promises (parameters,
  batch split, iterations, FLOPs) are what ``mini-nanochat pretrain --config X --plan`` prints;
- the SFT and RL configs load with their phase's config class, and their mixtures parse;
- every command examples/speedrun.sh runs (``DRY_RUN=1`` prints them) is accepted by the real
  command line, and every config it names exists.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from mini_nanochat.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
PRETRAIN_CONFIGS = ["gpu_d20_8xh100.toml", "gpu_d24_speedrun_8xh100.toml", "gpu_d12_1x24gb.toml"]


def _header(name: str) -> str:
    return "".join(line for line in (REPO / "examples" / name).read_text().splitlines(keepends=True)
                   if line.startswith("#"))


@pytest.mark.parametrize("name", PRETRAIN_CONFIGS)
def test_pretraining_config_header_matches_the_plan(name, capsys):
    header = _header(name)
    command = re.search(r"#\s+mini-nanochat (pretrain --config \S+ --plan[^\n]*)", header).group(1)
    assert f"examples/{name}" in command
    capsys.readouterr()
    assert main(shlex.split(command)) == 0
    plan = capsys.readouterr().out
    params = re.search(r"parameters\s+([\d,]+)", plan).group(1)
    micro, ranks, accum = re.search(r"total batch\s+[\d,]+ tokens/step = ([\d,]+) x (\d+) ranks x (\d+) accumulation",
                                    plan).groups()
    rows, seq = re.search(r"device batch\s+(\d+) x (\d+)", plan).groups()
    iterations = re.search(r"iterations\s+([\d,]+)\n", plan).group(1)
    flops = re.search(r"training FLOPs\s+(\S+)", plan).group(1)
    # the header's promise, as written there
    assert f"-> {params} parameters" in header
    assert f"= {rows} x {seq} x {ranks} rank" in header and f"x {accum} accumulation" in header
    assert re.search(rf"#\s+{iterations} iterations", header)
    promised = re.search(r"([\d.]+e\+?\d+) training FLOPs", header).group(1)
    assert float(promised) == pytest.approx(float(flops), rel=0.005)


def test_sft_and_rl_configs_load():
    from phases.phase2_training import config as p2config
    from phases.phase8_sft import mixture, rl, sft
    s = p2config.load_config(REPO / "examples" / "gpu_sft_8xh100.toml", cls=sft.SFTConfig)
    assert s.base == "d24_speedrun" and s.dtype == "bfloat16"
    assert [e.name for e in mixture.parse_spec(s.mixture)] == ["smoltalk", "mmlu_aux", "gsm8k"]
    r = p2config.load_config(REPO / "examples" / "gpu_rl_8xh100.toml", cls=rl.RLConfig)
    assert r.sft == s.run_name and r.num_samples <= 16 and mixture.parse_spec(r.task)[0].name == "gsm8k"
    assert "run_name = \"d24_speedrun\"" in (REPO / "examples" / "gpu_d24_speedrun_8xh100.toml").read_text()


def _speedrun_commands(**env) -> list[list[str]]:
    out = subprocess.run(["bash", str(REPO / "examples" / "speedrun.sh")], capture_output=True, text=True,
                         env={**os.environ, "DRY_RUN": "1", "MINI_NANOCHAT_BASE_DIR": "/nonexistent/base", **env},
                         check=True, timeout=60).stdout
    return [shlex.split(line[2:].rstrip(" &")) for line in out.splitlines() if line.startswith("+ ")]


def test_speedrun_commands_are_real_commands():
    commands = _speedrun_commands()
    stages = []
    for argv in commands:
        if argv[0] == "torchrun":
            assert "-m" in argv and argv[argv.index("-m") + 1] == "mini_nanochat", argv
            assert "--nproc_per_node=8" in argv
            argv = argv[argv.index("-m") + 2:]
        else:
            assert argv[0] == "mini-nanochat", argv
            argv = argv[1:]
        args = build_parser().parse_args(argv)     # a flag the CLI does not have exits here
        config = getattr(args, "config", None)
        if config:
            assert (REPO / config).is_file(), config
        stages.append(" ".join(a for a in argv[:2] if not a.startswith("-")))
    for stage in ("data download", "tokenizer train", "pretrain", "eval base", "sft", "rl", "eval chat", "chat"):
        assert any(s.startswith(stage) for s in stages), f"speedrun.sh has no {stage} step"
    assert "serve --run" in (REPO / "examples" / "speedrun.sh").read_text()


def test_speedrun_options():
    four = _speedrun_commands(NPROC="4", SKIP_RL="1")
    assert all("--nproc_per_node=4" in c for c in four if c[0] == "torchrun")
    assert not any("rl" in c for c in four) and any(c[-3:] == ["d24_sft", "--source", "hub"] for c in four)


def _guide_block(command: str) -> str:
    """The output shown under ``$ command`` in docs/start/cpu-to-8xh100.md."""
    page = (REPO / "docs" / "start" / "cpu-to-8xh100.md").read_text(encoding="utf-8")
    block = re.search(r"```text\n\$ " + re.escape(command) + r"\n(.*?)```", page, flags=re.S)
    assert block, f"the guide shows no output of {command}"
    return block.group(1)


def test_guide_shows_the_real_speedrun_dry_run():
    shown = _guide_block("MINI_NANOCHAT_BASE_DIR=/data/mnc DRY_RUN=1 bash examples/speedrun.sh")
    out = subprocess.run(["bash", str(REPO / "examples" / "speedrun.sh")], capture_output=True, text=True, check=True,
                         env={**os.environ, "DRY_RUN": "1", "MINI_NANOCHAT_BASE_DIR": "/data/mnc"}, timeout=60).stdout
    assert shown == out


def test_guide_shows_the_real_plan(capsys):
    command = "mini-nanochat pretrain --config examples/gpu_d24_speedrun_8xh100.toml --plan --world-size 8"
    shown = _guide_block(command)
    assert shown.endswith("...\n")
    capsys.readouterr()
    main(shlex.split(command)[1:])
    assert capsys.readouterr().out.startswith(shown.removesuffix("...\n"))
