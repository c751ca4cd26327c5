"""The end-to-end pipeline, one stage per function; ``mini-nanochat demo`` runs them in order.

Today the pipeline is: build the embedded corpus -> train a tokenizer -> evaluate it ->
show a colourised tokenization -> pretrain a tiny GPT (``examples/cpu_demo.toml``) and
print its validation bpb and samples. Each later phase appends its stage. Every stage
reuses what an earlier run already produced when its inputs are unchanged, and an
interrupted pretraining run is resumed from its last checkpoint, so nothing is lost.

What it leaves out: the stages of phases not built yet.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from phases.phase0_tokenizer.bpe import FILENAME, BPETokenizer
from phases.common.console import UserError, use_color
from phases.common.files import atomic_write_text
from phases.common.paths import base_dir
from phases.phase0_tokenizer.corpus import (build_embedded_corpus, ensure_embedded_corpus, format_report,
                                            iter_texts, list_shards)
from phases.phase0_tokenizer.evaluate import evaluate
from phases.phase0_tokenizer.evaluate import format_report as format_eval

TRAIN_INFO = "train_info.json"
DEMO_TEXT = ("Hello world! The tokenizer splits text into pieces: it's 2025, "
             "naïve café 🙂 日本語.\n    def f(x): return x ** 2")


def default_data_dir() -> Path:
    return base_dir() / "data" / "embedded"


def default_tokenizer_dir() -> Path:
    return base_dir() / "tokenizer"


@dataclass
class TrainSettings:
    """Everything that determines a trained tokenizer (saved next to it)."""
    vocab_size: int
    data_dir: str
    max_chars: int
    doc_cap: int

    def texts(self):
        return iter_texts(Path(self.data_dir), "train", max_chars=self.max_chars, doc_cap=self.doc_cap)


def resolve_data_dir(data_dir: str | Path | None, show_progress: bool = True) -> Path:
    """The training data folder; the embedded corpus is built on first use."""
    if data_dir is None:
        info = ensure_embedded_corpus(default_data_dir(), show_progress=show_progress)
        return Path(info.out_dir)
    path = Path(data_dir).expanduser()
    list_shards(path, "all")  # a clear UserError when the folder holds no shards
    return path


def train_tokenizer(settings: TrainSettings, out_dir: Path, workers: int | None = None,
                    show_progress: bool = True) -> tuple[BPETokenizer, float]:
    """Train, save ``tokenizer.json`` + ``train_info.json`` atomically; return (tokenizer, seconds)."""
    t0 = time.perf_counter()
    tok = BPETokenizer.train(settings.texts(), settings.vocab_size, workers=workers,
                             show_progress=show_progress)
    seconds = time.perf_counter() - t0
    tok.save(out_dir)
    info = {**asdict(settings), "train_seconds": round(seconds, 3), "merges": len(tok.merges)}
    atomic_write_text(out_dir / TRAIN_INFO, json.dumps(info, indent=2))
    return tok, seconds


def load_train_settings(tokenizer_dir: Path) -> TrainSettings | None:
    path = tokenizer_dir / TRAIN_INFO
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
        return TrainSettings(raw["vocab_size"], raw["data_dir"], raw["max_chars"], raw["doc_cap"])
    except (ValueError, KeyError) as e:
        raise UserError(f"corrupt {path}: {e}; retrain with `mini-nanochat tokenizer train`") from None


def evaluate_tokenizer(tokenizer_dir: Path, data_dir: Path | None = None, compare: bool = True,
                       color: bool | None = None) -> str:
    tok = BPETokenizer.load(tokenizer_dir)
    settings = load_train_settings(tokenizer_dir)
    if data_dir is None:
        data_dir = Path(settings.data_dir) if settings else resolve_data_dir(None)
    val = list(iter_texts(data_dir, "val"))
    report = evaluate(tok, val, settings.texts if settings else None, compare=compare)
    return format_eval(report, color=use_color() if color is None else color)


DEMO_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "cpu_demo.toml"


def _same_settings(saved: dict, requested: dict) -> bool:
    """Did a checkpoint come from these settings? The run stores resolved values (-1 -> the
    derived batch or horizon, "" -> the device it ran on), so only the values asked for count."""
    return all(saved.get(k) == v for k, v in requested.items() if v != -1 and v != "")


def pretrain_demo(config_path: Path = DEMO_CONFIG, fresh: bool = False, show_progress: bool = True,
                  iterations: int | None = None):
    """Train the demo GPT, resuming an interrupted run and reusing a finished one."""
    import shutil

    from mini_nanochat.pretrain import load_config, pretrain
    from phases.phase2_training.checkpoint import latest_checkpoint
    from phases.phase2_training.train import run_dir_of

    if not config_path.exists():
        raise UserError(f"{config_path} is missing (the demo runs from a checkout of the repository)")
    cfg = load_config(config_path, {"num_iterations": iterations} if iterations else None)
    if iterations:  # a shorter look is a different run: keep the full demo's run intact
        cfg = cfg.replace(run_name=f"{cfg.run_name}_{iterations}steps")
    run_dir = run_dir_of(cfg)
    if fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    latest = latest_checkpoint(run_dir / "checkpoints")
    if latest is not None and not _same_settings(latest.meta.get("train_config") or {}, asdict(cfg)):
        print(f"{run_dir} was trained with other settings; starting over")
        shutil.rmtree(run_dir)
        latest = None
    if latest is not None and latest.step >= cfg.num_iterations:
        print(f"reusing the finished run in {run_dir} (step {latest.step}; --fresh retrains)")
        return latest.meta.get("val_bpb"), None
    if latest is not None:
        print(f"resuming the interrupted demo run from step {latest.step}")
    result = pretrain(cfg, resume=latest is not None, show_progress=show_progress)
    return result.val_bpb, result


def run_demo(vocab_size: int = 8192, fresh: bool = False, show_progress: bool = True,
             iterations: int | None = None) -> None:
    """The pipeline so far: corpus -> tokenizer -> evaluation -> tokenization -> pretraining."""
    from phases.phase0_tokenizer.visualize import colorize_tokens

    color = use_color()
    t_start = time.perf_counter()
    print("== 1/5 embedded corpus (docstrings of the standard library and installed packages)")
    info = build_embedded_corpus(default_data_dir(), force=fresh, show_progress=show_progress)
    print(format_report(info))

    print(f"\n== 2/5 tokenizer: byte-level BPE, vocab {vocab_size}")
    tok_dir = default_tokenizer_dir()
    settings = TrainSettings(vocab_size, str(info.out_dir), max_chars=2_000_000_000, doc_cap=10_000)
    previous = load_train_settings(tok_dir) if (tok_dir / FILENAME).exists() else None
    if previous == settings and not fresh and not info.built:
        tok = BPETokenizer.load(tok_dir)
        print(f"reusing {tok_dir / FILENAME} (same data and settings; --fresh retrains)")
    else:
        tok, seconds = train_tokenizer(settings, tok_dir, show_progress=show_progress)
        print(f"trained {len(tok.merges)} merges in {seconds:.1f}s -> {tok_dir / FILENAME}")

    print("\n== 3/5 tokenizer evaluation")
    print(evaluate_tokenizer(tok_dir, Path(info.out_dir), color=color))

    print("\n== 4/5 tokenization of a sample (each colour is one token; · is a space, ↵ a newline)")
    ids = tok.encode(DEMO_TEXT)
    print(colorize_tokens(tok, ids, color=color))
    print(f"{len(DEMO_TEXT.encode())} bytes -> {len(ids)} tokens")
    print(f"\n== 5/5 pretraining a tiny GPT ({DEMO_CONFIG.relative_to(DEMO_CONFIG.parents[1])})")
    val_bpb, _ = pretrain_demo(fresh=fresh, show_progress=show_progress, iterations=iterations)
    print(f"validation bits per byte: {val_bpb:.4f}")
    print(f"\ndemo finished in {time.perf_counter() - t_start:.1f}s. Next: read the lessons in phases/, "
          "try `python tools/tokenizer_playground.py -i` and `python tools/training_dashboard.py cpu_demo`.")
