#!/usr/bin/env python3
"""Generation explorer: watch how temperature, top-k and top-p shape what a model writes.

Usage (from the repository root):

    python tools/generation_explorer.py "The meaning of life is" --run cpu_demo       # coloured text + table
    python tools/generation_explorer.py "Once upon" --run cpu_demo --sweep temperature=0,0.7,1.5
    python tools/generation_explorer.py "Once upon" --run cpu_demo --sweep top_p=0.5,0.9,1 --seed 3
    python tools/generation_explorer.py "The cat" --run cpu_demo --tree 3x2               # branching token tree
    python tools/generation_explorer.py "The cat" --run cpu_demo --branch 2:1             # take rank 1 at step 2
    python tools/generation_explorer.py "The cat" --run cpu_demo --softcap                # what the softcap does
    python tools/generation_explorer.py "The cat" --run cpu_demo --html explore.html      # sliders in a browser
    python tools/generation_explorer.py "The cat" --run cpu_demo --plot knobs.png         # the knobs as bar charts
    python tools/generation_explorer.py --run cpu_demo -i                                 # interactive
    python tools/generation_explorer.py "Hello"                                           # a fresh, untrained model

Views:

- **the generation, coloured by surprisal** (-ln p of each chosen token under the model:
  green = expected, red = surprising; ``--color-by entropy`` colours by how unsure the model
  was before choosing), then a **per-step table**: the chosen token, its probability, the
  entropy, and the top alternatives with their probabilities (``--top N``, ``--steps N``).
- **sweeps** (``--sweep temperature=0,0.7,1.5``, also ``top_k=`` and ``top_p=``): the same
  prompt and seed under each value, with mean surprisal, mean entropy and distinct tokens.
- **a branching token tree** (``--tree WxD``): the W most likely tokens at each of the first
  D steps, every leaf continued; the prefix each branch shares is prefilled once and copied
  between KV-cache rows (``KVCache.copy_prefix``), and each level decodes as one batch.
- **a branch** (``--branch STEP:RANK``): regenerate from step STEP taking the RANK-th most
  likely token instead (rank 0 = the most likely), after rolling the cache back
  (``KVCache.truncate``): nothing before STEP is recomputed.
- **the softcap** (``--softcap``): the first step's distribution with and without the
  ``15 tanh(z / 15)`` cap (entropy, top tokens, largest logit).
- **an HTML page** (``--html FILE``): self-contained (no network); per step the top
  ``--html-top`` logits (default 200) plus a 64-bin histogram of the rest, and sliders for
  temperature, top-k and top-p that re-normalise them in the browser. With a vocabulary of
  at most ``--html-top`` tokens the page holds every logit and its probabilities are exact;
  otherwise the tail is approximated by its histogram (the page says so).
- **interactive** (``-i``): type prompts; ``:t 0.7``, ``:k 20``, ``:p 0.9``, ``:seed 3``,
  ``:n 40`` set the knobs; ``:steps``, ``:tree 3x2``, ``:branch 2:1``, ``:softcap``, ``:help``, ``:q``.

Everything runs through Phase 6's engine (prefill, decode, the engine's own sampling with a
seeded generator per row) and Phase 1's sampler (``probabilities``, ``entropy``), so what you
see is what ``mini-nanochat generate`` does with the same knobs and seed. Without ``--run``
the model is a fresh ``--preset`` (default cpu-demo) with the trained tokenizer of
``<base>/tokenizer`` if there is one, else a byte-level tokenizer: its next-token
distribution is nearly uniform (entropy close to ln V), which the output points out.
Colour only on a terminal (``--no-color``, ``NO_COLOR``); piped output is plain text.
What it leaves out: beam search, repetition penalties, per-layer logit lens.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

# run as `python tools/generation_explorer.py`: use the phases next to this file
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from phases.common.console import UserError, paint, run_command, use_color
from phases.phase1_transformer.config import PRESETS, preset, resolve_device
from phases.phase6_inference.engine import Engine, SamplingParams
from phases.phase6_inference.explore import Trace, branch, piece, softcap_view, trace, tree

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _generation_views import (coloured, legend, page_data, plot_knobs, render_html,  # noqa: E402,F401
                               render_tree, step_table, summary)

UNTRAINED = ("note: untrained weights. The lm_head starts near zero, so every next-token distribution is "
             "almost uniform (entropy close to ln V = {lnv:.2f} nats) and the knobs have little to shape. "
             "Train a model (mini-nanochat demo) and pass it with --run.")
# surprisal (nats) -> colour, from "expected" to "surprising"


# -- the model ------------------------------------------------------------------------------------

def load(args) -> tuple[Engine, bool, str]:
    """(engine, trained?, description) for --run or a fresh --preset model."""
    if args.run:
        from phases.phase2_training.load import load_model
        model, tok, meta = load_model(args.run, device=args.device)
        return Engine(model, tok), True, f"run {args.run}, step {meta.get('step', '?')}"
    from phases.common.paths import tokenizer_dir
    from phases.phase0_tokenizer.bpe import FILENAME, BPETokenizer
    from phases.phase1_transformer.model import GPT
    tdir = Path(args.tokenizer) if args.tokenizer else tokenizer_dir()
    tok = BPETokenizer.load(tdir) if (tdir / FILENAME).is_file() else BPETokenizer([])  # bytes + specials
    cfg = preset(args.preset, vocab_size=tok.vocab_size)
    model = GPT.build(cfg, device=args.device, seed=args.model_seed)
    return Engine(model, tok), False, f"fresh {args.preset} model (seed {args.model_seed}), vocab {tok.vocab_size}"


def parse_sweep(spec: str) -> tuple[str, list]:
    name, _, values = spec.partition("=")
    name = name.strip().replace("-", "_")
    if name not in ("temperature", "top_k", "top_p") or not values:
        raise UserError(f"--sweep {spec!r}: use temperature=..., top_k=... or top_p=... with comma-separated values")
    cast = int if name == "top_k" else float
    try:
        return name, [cast(v) for v in values.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--sweep {spec!r}: values must be numbers") from None


def parse_pair(spec: str, sep: str, what: str) -> tuple[int, int]:
    try:
        a, b = spec.lower().split(sep)
        return int(a), int(b)
    except ValueError:
        raise UserError(f"{what} {spec!r}: expected two whole numbers like 3{sep}2") from None


# -- the command line --------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="generation_explorer.py", formatter_class=argparse.RawDescriptionHelpFormatter,
                                description=__doc__.split("\n\n")[0],
                                epilog="Examples:\n" + __doc__.split("Views:")[0].split("Usage (from the repository root):")[1])
    p.add_argument("prompt", nargs="?", help="the text to continue (omit with -i)")
    p.add_argument("--run", help="a trained run (name, folder or checkpoint); default: a fresh model")
    p.add_argument("--preset", default="cpu-demo", choices=list(PRESETS), help="size of the fresh model (cpu-demo)")
    p.add_argument("--model-seed", type=int, default=0, help="initialisation seed of the fresh model (0)")
    p.add_argument("--tokenizer", metavar="DIR", help="tokenizer folder for a fresh model (default <base>/tokenizer)")
    p.add_argument("--device", default="cpu")
    g = p.add_argument_group("sampling (as mini-nanochat generate)")
    g.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (default 1.0)")
    g.add_argument("--top-k", type=int, default=0, help="0 = off (default)")
    g.add_argument("--top-p", type=float, default=1.0, help="1 = off (default)")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--max-tokens", type=int, default=32)
    g.add_argument("--chat", action="store_true", help="treat the prompt as a user message (SFT models)")
    v = p.add_argument_group("views")
    v.add_argument("--top", type=int, default=5, help="alternatives per step in the table (5)")
    v.add_argument("--steps", type=int, default=16, help="rows of the per-step table (16; 0 = none)")
    v.add_argument("--color-by", choices=("surprisal", "entropy"), default="surprisal")
    v.add_argument("--sweep", action="append", default=[], metavar="KNOB=V1,V2,...",
                   help="compare values of temperature, top_k or top_p (repeatable)")
    v.add_argument("--tree", metavar="WxD", help="branching token tree: W alternatives at each of D steps")
    v.add_argument("--branch", metavar="STEP:RANK", help="regenerate from STEP with the RANK-th most likely token")
    v.add_argument("--softcap", action="store_true", help="the first step with and without the logit softcap")
    v.add_argument("--html", metavar="FILE", help="write a self-contained page with temperature/top-k/top-p sliders")
    v.add_argument("--html-top", type=int, default=200, help="logits kept per step in the page (200)")
    v.add_argument("--plot", metavar="PNG", help="bar charts of the first step under several knobs (needs matplotlib)")
    v.add_argument("--json", action="store_true", help="print JSON instead")
    v.add_argument("-i", "--interactive", action="store_true", help="type prompts and commands")
    c = p.add_mutually_exclusive_group()
    c.add_argument("--color", dest="color", action="store_const", const=True, help="force colour")
    c.add_argument("--no-color", dest="color", action="store_const", const=False, help="no colour (also NO_COLOR)")
    args = p.parse_args(argv)
    if not args.prompt and not args.interactive:
        p.error("give a PROMPT, or -i for the interactive mode")
    for name in ("top", "steps", "html_top"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    return args


def params_of(args) -> SamplingParams:
    try:
        return SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature, top_k=args.top_k or None,
                              top_p=None if args.top_p == 1 else args.top_p, seed=args.seed, use_tools=True)
    except ValueError as e:
        raise UserError(str(e)) from None


def encode(engine: Engine, text: str, chat: bool) -> list[int]:
    tok = engine.tokenizer
    if chat:
        from phases.phase0_tokenizer.chat import render_for_completion
        return render_for_completion(tok, [{"role": "user", "content": text}, {"role": "assistant", "content": ""}])
    return tok.encode(text, prepend="<|bos|>")


def explore(engine: Engine, args, prompt_text: str, color: bool, out) -> dict:
    """Run the views the flags ask for on one prompt; print them; return them as a dict."""
    params, prompt = params_of(args), encode(engine, prompt_text, args.chat)
    result: dict = {}
    tr = trace(engine, prompt, params, args.top)
    result["generation"] = {"text": tr.text, **summary(tr), "steps": [
        {"token": s.token, "text": s.text, "p": s.p_model, "p_knobs": s.p_sample, "entropy": s.entropy,
         "alternatives": [{"text": a[1], "p": a[2]} for a in s.alternatives]} for s in tr.steps]}
    if not args.json:
        out.write(paint(prompt_text, "2", color) + coloured(tr, color, args.color_by) + "\n")
        if color:
            out.write(legend(color, args.color_by) + "\n")
        sm = summary(tr)
        out.write(f"{sm['tokens']} tokens, {sm['distinct']} distinct, mean surprisal {sm['mean_surprisal']:.2f} nats, "
                  f"mean entropy {sm['mean_entropy']:.2f} nats\n")
        if args.steps:
            out.write("\n".join(step_table(tr, args.steps)) + "\n")
    if args.branch:
        step, rank = parse_pair(args.branch, ":", "--branch")
        br = branch(engine, tr, step, rank, args.top)
        result["branch"] = {"step": step, "rank": rank, "text": br.text, **summary(br)}
        if not args.json:
            out.write(f"\nbranch at step {step}, rank {rank} ({br.steps[step].text!r} instead of "
                      f"{tr.steps[step].text!r}; the first {step} tokens reused from the cache):\n")
            out.write(paint(prompt_text, "2", color) + coloured(br, color, args.color_by) + "\n")
    for spec in args.sweep:
        name, values = parse_sweep(spec)
        rows = []
        for value in values:
            try:
                p = replace(params, **{name: value if name == "temperature" else (value or None)})
            except ValueError as e:
                raise UserError(f"--sweep {spec!r}: {e}") from None
            t = trace(engine, prompt, p, args.top)
            rows.append({name: value, "text": t.text, **summary(t)})
        result.setdefault("sweeps", []).append({"knob": name, "rows": rows})
        if not args.json:
            out.write(f"\nsweep over {name} (seed {params.seed}):\n")
            for r in rows:
                out.write(f"  {name}={r[name]:<6} surprisal {r['mean_surprisal']:5.2f}  entropy {r['mean_entropy']:5.2f}  "
                          f"distinct {r['distinct']:>3}  {r['text'][:70]!r}\n")
    if args.tree:
        width, depth = parse_pair(args.tree, "x", "--tree")
        if width < 1 or depth < 1:
            raise UserError("--tree needs W and D of at least 1")
        leaves = tree(engine, prompt, width, depth, replace(params, max_tokens=min(params.max_tokens, 12)))
        result["tree"] = [{"path": [{"text": engine.tokenizer.decode([t]), "p": p} for t, p in lf["path"]],
                           "continuation": lf["text"]} for lf in leaves]
        if not args.json:
            out.write(f"\nbranching tree: the {width} most likely tokens at each of {depth} step(s), then continued "
                      f"(prefix prefilled once, copied between cache rows):\n")
            out.write("\n".join(render_tree(leaves, depth, color)) + "\n")
    if args.softcap:
        if not engine.model.config.softcap:
            raise UserError("this model has no softcap (softcap = 0)")
        sc = softcap_view(engine, prompt)
        result["softcap"] = sc
        if not args.json:
            out.write(f"\nthe logit softcap ({sc['softcap']:g} tanh(z/{sc['softcap']:g})) at the first step:\n")
            for name in ("raw", "capped"):
                d = sc[name]
                tops = "  ".join(f"{t!r} {p:.3f}" for t, p in d["top"][:5])
                out.write(f"  {name:<7} logits in [{d['min_logit']:.2f}, {d['max_logit']:.2f}], entropy "
                          f"{d['entropy']:.3f} nats  {tops}\n")
    if args.plot:
        plot_knobs(tr.steps[0].logits, engine.tokenizer, prompt_text, args.plot)
        result["plot"] = args.plot
        if not args.json:
            out.write(f"\nwrote {args.plot}\n")
    if args.html:
        data = page_data(engine, tr, args.html_top)
        Path(args.html).write_text(render_html(data, args.description), encoding="utf-8")
        result["html"] = args.html
        if not args.json:
            out.write(f"\nwrote {args.html} (open it in a browser; the sliders re-normalise the stored logits)\n")
    return result


HELP = """commands: :t T  :k K  :p P  :seed N  :n N  (set temperature, top-k, top-p, seed, max tokens)
          :steps  (the last prompt's per-step table)  :tree WxD  :branch STEP:RANK  :softcap
          :help  :q (quit); anything else is a prompt"""


def interactive(engine: Engine, args, color: bool, inp=None, out=None) -> None:
    inp, out = inp or sys.stdin, out or sys.stdout
    last = None
    setters = {":t": ("temperature", float), ":k": ("top_k", int), ":p": ("top_p", float), ":seed": ("seed", int),
               ":n": ("max_tokens", int)}
    out.write(HELP + "\n")
    for line in inp:
        line = line.rstrip("\n")
        cmd, _, rest = line.strip().partition(" ")
        try:
            if cmd in (":q", ":quit", ":exit"):
                break
            if cmd == ":help":
                out.write(HELP + "\n")
            elif cmd in setters:
                name, cast = setters[cmd]
                setattr(args, name, cast(rest))
                params_of(args)                                   # validates
                out.write(f"{name} = {getattr(args, name)}\n")
            elif cmd in (":steps", ":tree", ":branch", ":softcap"):
                if last is None:
                    out.write("type a prompt first\n")
                    continue
                view = argparse.Namespace(**{**vars(args), "sweep": [], "tree": None, "branch": None,
                                             "softcap": False, "html": None, "plot": None, "steps": 0})
                if cmd == ":steps":
                    view.steps = 10 ** 6
                elif cmd == ":softcap":
                    view.softcap = True
                else:
                    setattr(view, cmd[1:], rest.strip())
                explore(engine, view, last, color, out)
            elif line.strip():
                last = line
                explore(engine, argparse.Namespace(**{**vars(args), "sweep": [], "tree": None, "branch": None,
                                                      "softcap": False, "html": None, "plot": None}), last, color, out)
        except (UserError, ValueError) as e:
            out.write(f"error: {e}\n")
        out.flush()


def main(argv=None) -> int:
    args = parse_args(argv)

    def go():
        from phases.common.files import output_file
        args.device = resolve_device(args.device)            # "tpu": one error line, not torch's list
        for flag, suffix in (("plot", ".png"), ("html", None)):
            if getattr(args, flag):                          # outputs checked before the model is built
                output_file(getattr(args, flag), f"--{flag}", suffix)
        engine, trained, args.description = load(args)
        color = use_color(sys.stdout, args.color)
        if not trained and not args.json:
            print(paint(UNTRAINED.format(lnv=math.log(engine.tokenizer.vocab_size)), "2", color), file=sys.stderr)
        if args.interactive:
            return interactive(engine, args, color)
        result = explore(engine, args, args.prompt, color, sys.stdout)
        if args.json:
            print(json.dumps({"model": args.description, **result}))
    return run_command(go)


if __name__ == "__main__":
    sys.exit(main())
