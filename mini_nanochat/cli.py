"""The ``mini-nanochat`` command line: one command, a subcommand per stage.

    mini-nanochat demo                               # the whole pipeline as far as it exists
    mini-nanochat data embedded                      # build the offline corpus
    mini-nanochat data download -n 8                 # fetch pretraining shards (Phase 5)
    mini-nanochat tokenizer train --vocab-size 8192  # train the BPE tokenizer
    mini-nanochat tokenizer encode "Hello world"     # show ids and a colourised view
    mini-nanochat tokenizer eval                     # bytes/token per genre vs rustbpe
    mini-nanochat pretrain --config examples/cpu_demo.toml   # train a GPT (Phases 2-5)
    torchrun --standalone --nproc_per_node=2 -m mini_nanochat pretrain --config examples/cpu_ddp.toml

Mistakes a user can fix (a missing tokenizer, a bad number) print ``error: …`` and
exit with status 2; they never show a traceback. Later phases add their subcommands
here (pretrain, sft, chat, serve, …).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from phases.common.console import run_command

EPILOG = "Files live under $MINI_NANOCHAT_BASE_DIR (default ~/.cache/mini-nanochat)."


def positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mini-nanochat", epilog=EPILOG,
        description="Build a ChatGPT-style LLM stage by stage (a teaching rebuild of nanochat).")
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = sub.add_parser("demo", help="run the pipeline end to end on the embedded corpus (CPU)",
                          description="Build the embedded corpus, train a tokenizer, evaluate it and show "
                                      "a colourised tokenization. Reuses earlier results when unchanged.",
                          epilog=EPILOG)
    demo.add_argument("--vocab-size", type=positive_int, default=8192, help="tokenizer vocabulary (default 8192)")
    demo.add_argument("--fresh", action="store_true", help="rebuild everything instead of reusing")
    demo.add_argument("--iterations", type=positive_int, default=None,
                      help="pretraining steps (default: examples/cpu_demo.toml's); fewer = a quicker look")
    demo.set_defaults(func=cmd_demo)

    data = sub.add_parser("data", help="datasets").add_subparsers(dest="data_command", metavar="ACTION",
                                                                  required=True)
    emb = data.add_parser("embedded", help="build the offline corpus from installed docstrings",
                          description="Extract the docstrings of the Python standard library, pydoc topics "
                                      "and installed packages into parquet shards (last shard = validation).",
                          epilog=EPILOG)
    emb.add_argument("--out", type=Path, default=None, help="output folder (default <base>/data/embedded)")
    emb.add_argument("--force", action="store_true", help="rebuild even if an up-to-date corpus exists")
    emb.set_defaults(func=cmd_data_embedded)
    dl = data.add_parser("download", help="download pretraining shards from the Hugging Face Hub",
                         description="Fetch shards 0..N-1 of a pretraining dataset plus its validation shard, "
                                     "with parallel workers, retries and resumable partial files.",
                         epilog=EPILOG + " Example: mini-nanochat data download -n 2 --dataset climbmix")
    add_download_arguments(dl)
    dl.set_defaults(func=cmd_data_download)

    tok = sub.add_parser("tokenizer", help="train, use and evaluate the BPE tokenizer").add_subparsers(
        dest="tok_command", metavar="ACTION", required=True)
    train = tok.add_parser("train", help="train a byte-level BPE tokenizer", epilog=EPILOG,
                           description="Train on the train shards (all but the last) of --data.")
    train.add_argument("--vocab-size", type=positive_int, default=8192,
                       help="vocabulary size including the 9 special tokens (default 8192; nanochat uses 32768)")
    train.add_argument("--out", type=Path, default=None, help="output folder (default <base>/tokenizer)")
    train.add_argument("--data", type=Path, default=None,
                       help="folder of parquet shards with a 'text' column (default: the embedded corpus)")
    train.add_argument("--max-chars", type=positive_int, default=2_000_000_000,
                       help="stop after this many characters (default 2e9, as nanochat)")
    train.add_argument("--doc-cap", type=positive_int, default=10_000,
                       help="crop each document to this many characters (default 10000)")
    train.add_argument("--workers", type=positive_int, default=None, help="processes for chunk counting")
    train.set_defaults(func=cmd_tok_train)

    enc = tok.add_parser("encode", help="encode text and show its tokens", epilog=EPILOG)
    enc.add_argument("text", help="the text to encode ('-' reads standard input)")
    enc.add_argument("--tokenizer", type=Path, default=None, help="tokenizer folder (default <base>/tokenizer)")
    enc.add_argument("--ids-only", action="store_true", help="print only the ids, space-separated")
    enc.add_argument("--no-color", action="store_true", help="no ANSI colours (NO_COLOR is honoured too)")
    enc.set_defaults(func=cmd_tok_encode)

    ev = tok.add_parser("eval", help="bytes per token on genres and the validation shard, vs rustbpe",
                        epilog=EPILOG)
    ev.add_argument("--tokenizer", type=Path, default=None, help="tokenizer folder (default <base>/tokenizer)")
    ev.add_argument("--data", type=Path, default=None, help="data folder (default: the one it was trained on)")
    ev.add_argument("--no-compare", action="store_true", help="skip training the rustbpe reference")
    ev.set_defaults(func=cmd_tok_eval)

    pre = sub.add_parser(
        "pretrain", help="pretrain a GPT (Phases 2-5)", epilog=EPILOG + " Example: mini-nanochat pretrain "
        "--config examples/cpu_demo.toml --depth 6 --optimizer adamw. Several processes: torchrun "
        "--standalone --nproc_per_node=2 -m mini_nanochat pretrain --config examples/cpu_ddp.toml",
        description="Train a GPT (Phase 2's loop) with MuonAdamW and the depth auto-scaling (Phase 3), on "
                    "one process or every torchrun rank (Phase 4), fed by the packed streaming loader "
                    "(Phase 5). Prints everything the depth dial and the config derive before training; "
                    "checkpoints atomically; --resume continues a run exactly. Precedence: defaults < "
                    "--config < --set < the dedicated flags; -1 means 'derive it from the depth'.")
    pre.add_argument("--config", type=Path, default=None, help="a TOML file (see examples/)")
    pre.add_argument("--depth", type=positive_int, help="the dial: model depth (width and heads follow)")
    pre.add_argument("--num-iterations", type=int, help="optimizer steps (-1: from the tokens:params ratio)")
    pre.add_argument("--device-batch-size", type=positive_int, help="rows per forward/backward")
    pre.add_argument("--total-batch-size", type=int, help="tokens per optimizer step (-1: from the depth)")
    pre.add_argument("--target-param-data-ratio", type=float,
                     help="training tokens per scaling parameter, used when num_iterations is -1")
    pre.add_argument("--optimizer", choices=("muon", "adamw"), help="muon (MuonAdamW, default) or adamw")
    pre.add_argument("--run-name", help="run folder name under <base>/runs")
    pre.add_argument("--run-dir", type=Path, help="run folder (overrides --run-name)")
    pre.add_argument("--save-every", type=int, help="checkpoint every N steps (0 = only at the end)")
    pre.add_argument("--eval-every", type=int, help="validation bpb every N steps (0 = only at the end)")
    pre.add_argument("--seed", type=int, help="random seed")
    pre.add_argument("--device", help="cpu, cuda, cuda:1, mps (default: cuda if available)")
    pre.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    pre.add_argument("--resume", action="store_true", help="continue from the run's latest good checkpoint")
    pre.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override any config key, e.g. --set matrix_lr=0.004 (repeatable)")
    pre.set_defaults(func=cmd_pretrain)
    return parser


def _version() -> str:
    from mini_nanochat import __version__
    return f"mini-nanochat {__version__}"


# -- commands -------------------------------------------------------------------

def cmd_demo(args) -> None:
    from mini_nanochat.pipeline import run_demo
    run_demo(vocab_size=args.vocab_size, fresh=args.fresh, show_progress=not args.no_progress,
             iterations=args.iterations)


def cmd_data_embedded(args) -> None:
    from mini_nanochat.pipeline import default_data_dir
    from phases.phase0_tokenizer.corpus import build_embedded_corpus, format_report
    info = build_embedded_corpus(args.out or default_data_dir(), force=args.force,
                                 show_progress=not args.no_progress)
    print(format_report(info))


def cmd_tok_train(args) -> None:
    from mini_nanochat.pipeline import TrainSettings, default_tokenizer_dir, resolve_data_dir, train_tokenizer
    data_dir = resolve_data_dir(args.data, show_progress=not args.no_progress)
    out = args.out or default_tokenizer_dir()
    settings = TrainSettings(args.vocab_size, str(data_dir.resolve()), args.max_chars, args.doc_cap)
    tok, seconds = train_tokenizer(settings, out, workers=args.workers, show_progress=not args.no_progress)
    print(f"trained {len(tok.merges)} merges (vocab {tok.vocab_size}) in {seconds:.1f}s -> {out}")


def cmd_tok_encode(args) -> None:
    from mini_nanochat.pipeline import default_tokenizer_dir
    from phases.phase0_tokenizer.bpe import BPETokenizer
    from phases.common.console import use_color
    from phases.phase0_tokenizer.visualize import colorize_tokens
    text = sys.stdin.read() if args.text == "-" else args.text
    tok = BPETokenizer.load(args.tokenizer or default_tokenizer_dir())
    ids = tok.encode(text)
    if args.ids_only:
        print(" ".join(map(str, ids)))
        return
    print(colorize_tokens(tok, ids, color=use_color() and not args.no_color))
    print(f"ids: {ids}")
    print(f"{len(text.encode('utf-8', 'surrogatepass'))} bytes -> {len(ids)} tokens")


def add_download_arguments(parser) -> None:
    from phases.phase5_data.download import add_arguments
    add_arguments(parser)


def cmd_data_download(args) -> None:
    from phases.phase5_data.download import run
    run(args)


def cmd_tok_eval(args) -> None:
    from mini_nanochat.pipeline import default_tokenizer_dir, evaluate_tokenizer
    print(evaluate_tokenizer(args.tokenizer or default_tokenizer_dir(), args.data, compare=not args.no_compare))


def cmd_pretrain(args) -> None:
    from mini_nanochat.pretrain import load_config, pretrain
    from phases.phase2_training.config import parse_overrides
    overrides = parse_overrides(args.set)
    for flag in ("depth", "num_iterations", "device_batch_size", "total_batch_size", "target_param_data_ratio",
                 "optimizer", "run_name", "run_dir", "save_every", "eval_every", "seed", "device", "compile"):
        value = getattr(args, flag)
        if value is not None:
            overrides[flag] = str(value) if isinstance(value, Path) else value
    cfg = load_config(args.config, overrides)
    result = pretrain(cfg, resume=args.resume, show_progress=not args.no_progress)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 speaks for the run
        return
    print(f"done: step {result.step}, val bpb {result.val_bpb:.4f} (best {result.min_val_bpb:.4f}), "
          f"{result.train_time:.0f}s of training -> {result.run_dir}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(lambda: args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
