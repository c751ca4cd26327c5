"""A pipeline config (TOML): which stages the end-to-end pipeline runs and how each is set up.

    name = "cpu_demo"
    [pretrain]
    config = "cpu_demo.toml"          # the stage's own config, relative to this file
    set = {dtype = "auto"}            # and overrides of its keys

Every table's keys and their types are checked when the file is read, so a typo is one clear
error, never a setting silently ignored. ``pipeline.py`` runs what it describes.
What it leaves out: the stages' own keys (each stage's config loader checks those).
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from phases.common.console import UserError

REPO = Path(__file__).resolve().parents[1]
DEMO_PIPELINE = REPO / "examples" / "pipeline_cpu.toml"
ORDER = ("data", "tokenizer", "pretrain", "base_eval", "sft", "rl", "chat_eval", "chat")
KEYS = {"name": str, "data": dict, "tokenizer": dict, "pretrain": dict, "base_eval": dict, "sft": dict, "rl": dict,
        "chat_eval": dict, "chat": dict}
TRAINING = {"config": str, "set": dict}
EVAL = {"args": str}
TABLE_KEYS = {"data": {"shards": int}, "pretrain": TRAINING, "sft": TRAINING, "rl": TRAINING,
              "tokenizer": {"vocab_size": int, "max_chars": int, "doc_cap": int, "compare": bool},
              "base_eval": EVAL, "chat_eval": EVAL, "chat": {"prompts": list, "max_tokens": int}}
TYPE_NAMES = {int: "a whole number", str: "a string", dict: "a table", bool: "true or false", list: "a list"}


def _check_table(path: Path, table: str, values: dict) -> None:
    """Every key of ``[table]`` known and of its type: a typo is an error, never silently ignored."""
    allowed = TABLE_KEYS[table]
    for k, v in values.items():
        if k not in allowed:
            raise UserError(f"{path}: [{table}] has no key {k!r}; it takes {', '.join(allowed)}")
        want = allowed[k]
        if not isinstance(v, want) or (want is int and isinstance(v, bool)):
            raise UserError(f"{path}: [{table}] {k} must be {TYPE_NAMES[want]}, got {v!r}")
    if table == "chat" and not all(isinstance(x, str) and x.strip() for x in values.get("prompts", [])):
        raise UserError(f"{path}: [chat] prompts must be a list of non-empty strings")


class PipelineConfig:
    """A pipeline TOML: which stages exist and how each is configured."""

    def __init__(self, path: Path, overrides: dict | None = None, suffix: str = ""):
        self.path = Path(path).expanduser().resolve()
        try:
            raw = tomllib.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"{path}: no such pipeline config (see examples/pipeline_cpu.toml)") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            raise UserError(f"{path}: not a readable TOML file ({e})") from None
        for k, v in raw.items():
            if k not in KEYS:
                raise UserError(f"{path}: unknown key {k!r}; a pipeline config has {', '.join(KEYS)}")
            if not isinstance(v, KEYS[k]):
                raise UserError(f"{path}: {k} must be {TYPE_NAMES[KEYS[k]]}")
            if k in TABLE_KEYS:
                _check_table(path, k, v)
        self.suffix = suffix                   # appended to the name and every run name (demo --iterations)
        self.name = (raw.get("name") or self.path.stem) + suffix
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
            raise UserError(f"{path}: name {self.name!r} must be letters, digits, '_', '-' or '.' "
                            "(it names a folder under pipelines/)")
        self.raw = raw
        self.overrides = overrides or {}       # {stage: {key: value}} from the command line (demo --iterations)
        self.data, self.tokenizer, self.chat = raw.get("data", {}), raw.get("tokenizer", {}), raw.get("chat", {})
        for stage in ("pretrain", "sft", "rl"):
            if stage in raw and "config" not in raw[stage]:
                raise UserError(f"{path}: [{stage}] needs config = \"FILE.toml\" (the stage's own config)")

    def section(self, stage: str) -> dict:
        return self.raw.get(stage, {})

    def stages(self) -> list[str]:
        """The stages this config has, in order (pretrain is required; data, tokenizer and chat always run)."""
        if "pretrain" not in self.raw:
            raise UserError(f"{self.path}: no [pretrain] table; every pipeline pretrains")
        have = [s for s in ORDER if s in self.raw or s in ("data", "tokenizer")]
        return have + (["chat"] if "chat" not in have and ("sft" in have) else [])

    def config_path(self, stage: str) -> Path:
        path = (self.path.parent / self.section(stage)["config"]).resolve()
        if not path.is_file():
            raise UserError(f"{self.path}: [{stage}] config {path} does not exist")
        return path
