"""``mini-nanochat generate``: complete a prompt with a trained model, streaming the text.

    mini-nanochat generate --run cpu_demo "The meaning of life is"
    mini-nanochat generate --run cpu_demo "def main(" -n 3 --temperature 0.9 --top-p 0.95 --seed 7
    mini-nanochat generate --run RUN --chat "What is 12*7?"          # as a user message (SFT models)
    echo "Once upon a time" | mini-nanochat generate --run cpu_demo - --max-tokens 64 --json

With one sample the text streams as it is generated (UTF-8 safe: a character split over
two tokens is printed once whole). With ``-n N`` the N samples share one prefill and run as
one batch (``--batch-size`` at a time, with a progress bar when there are more; the same
seed gives the same samples whatever the batch size); each is printed when it finishes.
``--json`` prints one JSON object per sample
(tokens, masks, text, finish reason, log-probs with ``--logprobs``) instead.

This module is mountable: ``add_arguments(parser)`` and ``run(args)`` (the top-level CLI
mounts them as ``mini-nanochat generate``); ``python -m phases.phase6_inference.generate``
runs the same pair.

What it leaves out: an interactive chat (Phase 9's ``chat``), the generation explorer's
views (``tools/generation_explorer.py``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from phases.common.console import UserError, paint, run_command, use_color

DEFAULTS = dict(max_tokens=128, temperature=0.8, top_k=50, seed=42)


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The command's flags, added to ``parser`` (the CLI's subparser or a fresh one)."""
    parser.add_argument("prompt", help="the text to complete ('-' reads standard input)")
    parser.add_argument("--run", required=True,
                        help="a run name (under <base>/runs), run folder, or checkpoint step folder")
    parser.add_argument("-n", "--num-samples", type=_positive_int, default=1,
                        help="independent samples of the same prompt, generated as one batch (default 1)")
    parser.add_argument("--batch-size", type=_positive_int, default=64,
                        help="samples generated at once; more run in batches of this size (default 64)")
    parser.add_argument("--max-tokens", type=_positive_int, default=DEFAULTS["max_tokens"],
                        help=f"tokens to generate per sample at most (default {DEFAULTS['max_tokens']})")
    parser.add_argument("--temperature", type=_non_negative_float, default=DEFAULTS["temperature"],
                        help=f"0 = greedy (always the most likely token); higher = more varied "
                             f"(default {DEFAULTS['temperature']})")
    parser.add_argument("--top-k", type=int, default=DEFAULTS["top_k"],
                        help=f"sample among the k most likely tokens only; 0 = off (default {DEFAULTS['top_k']})")
    parser.add_argument("--top-p", type=float, default=None,
                        help="sample among the most likely tokens that make up probability p (e.g. 0.9; default off)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"],
                        help=f"random seed: the same seed gives the same text (default {DEFAULTS['seed']})")
    parser.add_argument("--stop", action="append", default=[], metavar="TEXT",
                        help="stop when this text appears (repeatable; not included in the output)")
    parser.add_argument("--chat", action="store_true",
                        help="treat the prompt as a user message and generate the assistant's reply")
    parser.add_argument("--no-tools", action="store_true", help="do not run the calculator tool")
    parser.add_argument("--logprobs", action="store_true", help="with --json: include per-token log-probabilities")
    parser.add_argument("--json", action="store_true", help="print one JSON object per sample")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps (default cpu)")
    parser.add_argument("--no-color", action="store_true", help="no colour (NO_COLOR is honoured too)")
    return parser


def _prompt_ids(tokenizer, text: str, chat: bool) -> list[int]:
    from phases.phase0_tokenizer.chat import render_for_completion
    if chat:
        return render_for_completion(tokenizer, [{"role": "user", "content": text},
                                                 {"role": "assistant", "content": ""}])
    return tokenizer.encode(text, prepend="<|bos|>")


def run(args: argparse.Namespace) -> None:
    """Load the run's model, generate, print."""
    import torch

    from phases.phase2_training.load import load_model
    from phases.phase6_inference.engine import Engine, SamplingParams

    text = sys.stdin.read() if args.prompt == "-" else args.prompt
    if not text:
        raise UserError("the prompt is empty")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise UserError(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.top_k < 0:
        raise UserError(f"--top-k must be >= 0 (0 = off), got {args.top_k}")
    try:                                    # the engine's own rules (finite temperature, non-empty --stop, ...)
        SamplingParams(args.max_tokens, args.temperature, args.top_k, args.top_p, args.seed, tuple(args.stop))
    except ValueError as e:
        raise UserError(str(e)) from None
    if args.logprobs and not args.json:
        raise UserError("--logprobs needs --json (the log-probabilities are printed in the JSON objects)")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: CUDA is not available on this machine")
    model, tok, meta = load_model(args.run, device=args.device)
    engine = Engine(model, tok)
    ids = _prompt_ids(tok, text, args.chat)
    room = engine.max_context - len(ids)
    if room < 1:
        raise UserError(f"the prompt has {len(ids)} tokens; the model's context holds {engine.max_context}")
    kw = dict(num_samples=args.num_samples, max_tokens=min(args.max_tokens, room), temperature=args.temperature,
              top_k=args.top_k, top_p=args.top_p, seed=args.seed, stop=tuple(args.stop),
              logprobs=args.logprobs, use_tools=not args.no_tools)
    color = use_color(sys.stdout, False if args.no_color else None)
    t0 = time.perf_counter()
    if args.json or args.num_samples > 1:
        _samples(engine, ids, kw, args, "" if args.chat else paint(text, "2", color), color)
        samples = args.num_samples
    else:
        _stream_one(engine, ids, kw, "" if args.chat else paint(text, "2", color))
        samples = 1
    if args.json:
        return
    dt = time.perf_counter() - t0
    step_name = meta.get("step", "?")
    print(paint(f"[{samples} sample(s), {dt:.2f} s, run {args.run} step {step_name}]", "2", color), file=sys.stderr)


def _stream_one(engine, ids: list[int], kw: dict, shown_prompt: str) -> None:
    """One sample, its text printed as it is generated."""
    out = sys.stdout
    out.write(shown_prompt)
    for step in engine.generate(ids, **kw):
        out.write(step.texts[0])
        out.flush()
    out.write("\n")


def _samples(engine, ids: list[int], kw: dict, args: argparse.Namespace, shown_prompt: str, color: bool) -> None:
    """N samples, ``--batch-size`` at a time; each printed (or one JSON line) when it finishes."""
    from phases.common.console import progress

    out, total = sys.stdout, args.num_samples
    bar = progress(total=total, desc="samples", unit="sample", enabled=total > args.batch_size)
    for first in range(0, total, args.batch_size):
        n = min(args.batch_size, total - first)
        batch_kw = {**kw, "num_samples": n, "first_sample": first}
        if args.json:
            for c in engine.generate_batch(ids, **batch_kw):
                print(json.dumps({"sample": c.sample_index, "text": c.text, "tokens": c.tokens, "masks": c.masks,
                                  "finish_reason": c.finish_reason, "logprobs": c.logprobs}))
        else:
            buffers = [""] * n
            for step in engine.generate(ids, **batch_kw):
                for r, piece in enumerate(step.texts):
                    buffers[r] += piece
                    if step.finish_reasons[r]:
                        head = f"--- sample {first + r + 1} ({step.finish_reasons[r]}) ---"
                        out.write(paint(head, "1;36", color) + "\n" + shown_prompt + buffers[r] + "\n")
                        out.flush()
        bar.update(n)
    bar.close()



def main(argv: list[str] | None = None) -> int:
    parser = add_arguments(argparse.ArgumentParser(
        prog="python -m phases.phase6_inference.generate",
        description="Complete a prompt with a trained model (KV-cache engine), streaming the text."))
    args = parser.parse_args(argv)
    return run_command(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
